namespace Isthmus.DataPlane.Programming;

// Owned by the firewall/NAT work (issue 3). Placeholder shape: extend freely.

/// <summary>SNAT / masquerade, DNAT / port forwards, static 1:1 NAT.</summary>
public sealed record NatSpec
{
}
