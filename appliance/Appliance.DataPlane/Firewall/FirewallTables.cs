namespace Isthmus.DataPlane.Firewall;

/// <summary>Compiled zones, classifier, conntrack limits and NAT rules. Placeholder: the firewall/NAT work fills it.</summary>
public sealed class FirewallTables
{
    public static readonly FirewallTables Empty = new();
}
