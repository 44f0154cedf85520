namespace Isthmus.DataPlane.Route;

/// <summary>Compiled gateways, FIB and neighbor settings. Placeholder: the gateway/route work fills it.</summary>
public sealed class L3Tables
{
    public static readonly L3Tables Empty = new();
}
