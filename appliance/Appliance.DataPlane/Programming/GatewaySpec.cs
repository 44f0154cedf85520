namespace Isthmus.DataPlane.Programming;

// Owned by the gateway/route work (issue 3). Placeholder shapes: extend freely.

/// <summary>The appliance's L3 interface in one bridge domain.</summary>
public sealed record GatewaySpec
{
    /// <summary>Bridge domain name.</summary>
    public required string Domain { get; init; }
}

/// <summary>A static route (0.0.0.0/0 for the upstream default).</summary>
public sealed record RouteSpec
{
    public required string Prefix { get; init; }
}
