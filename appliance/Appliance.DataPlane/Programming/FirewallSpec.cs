namespace Isthmus.DataPlane.Programming;

// Owned by the firewall/NAT work (issue 3). Placeholder shape: extend freely.

/// <summary>Zones, policies per zone pair, and conntrack settings.</summary>
public sealed record FirewallSpec
{
}
