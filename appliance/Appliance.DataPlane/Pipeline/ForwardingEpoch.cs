namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// One worker's forwarding generation: advanced whenever something a cached forwarding result was
/// derived from may have changed (a new snapshot: routes, gateways, NAT, policy; a neighbor's MAC
/// changed or its entry left the cache; a MAC moved or aged out of a bridge table). The
/// established-flow fast path (Firewall/README.md) trusts a flow's cached result only when it was
/// learned in the current epoch, so one increment invalidates every cached result at once.
/// </summary>
/// <remarks>Owned by the worker thread. Starts at 1: a zeroed cache slot (epoch 0) never matches.</remarks>
public sealed class ForwardingEpoch
{
    public uint Value { get; private set; } = 1;

    /// <summary>Times the epoch advanced (visible in tests).</summary>
    public long Advances { get; private set; }

    public void Advance()
    {
        Value++;
        Advances++;
    }
}
