using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Nat;

public enum NatDrop : ushort
{
    /// <summary>The worker's conntrack table is full: the new flow is dropped, established ones are untouched.</summary>
    ConntrackFull,

    /// <summary>Every port of the SNAT pool's range is taken toward this destination (or a masquerade's egress domain has no gateway address).</summary>
    PortsExhausted,

    /// <summary>The new flow's reply tuple already belongs to another session (a DNAT or 1:1 overlap).</summary>
    TupleCollision,

    /// <summary>A later fragment of a new flow whose first fragment committed no session (dropped after the firewall).</summary>
    FragmentNoFlow,
}

/// <summary>
/// Source NAT and session commit for new flows the firewall allowed: hairpin, static 1:1 outbound
/// or the first matching SNAT rule picks the source (with a per-worker port allocation), then the
/// session is added to conntrack with both tuples and the source is rewritten. See README.md.
/// </summary>
public sealed class NatStage() : PipelineStage("nat", typeof(NatDrop))
{
    /// <inheritdoc/>
    public override bool SkipsFinished => true;

    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var tables = context.Snapshot.Firewall;
        if (!tables.Tracking)
        {
            return;
        }

        var flows = context.Flows;
        var table = flows.Table!;
        var packets = batch.Packets;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.NewFlow | PacketFlags.KnownFlow)) == 0
                || (p.Flags & PacketFlags.FastPath) != 0)
            {
                // Nothing to do, or already fully rewritten from its session's cached result.
                continue;
            }

            ref var pending = ref flows.Pending[i];
            if ((p.Flags & PacketFlags.KnownFlow) != 0)
            {
                if (pending.SourceRewrite)
                {
                    // A known flow's source half of the translation (conntrack did the destination).
                    var current = pending.Current;
                    NatRewriter.Rewrite(context.Pool.Frame(p.Buffer, p.Offset, p.Length), p.L3Offset, p.L4Offset, current,
                        current with { Source = pending.SourceTo, SourcePort = pending.SourcePortTo });
                }

                if (pending.FastCandidate && pending.Adjacency != 0)
                {
                    // Route, firewall and nat are done with it: its session may skip them from now on.
                    FlowCache.Learn(ref table[p.Flow], p.FlowDirection, pending.Adjacency, context.Epoch.Value);
                    flows.FastLearned++;
                }
            }
            else if (pending.Allowed && pending.LaterFragment)
            {
                // Never a session of its own: it joins the one its first fragment committed in this batch.
                if (!TryJoin(ref p, pending, context, table, flows.Now))
                {
                    Drop(ref p, (ushort)NatDrop.FragmentNoFlow);
                }
            }
            else if (pending.Allowed && pending.Trackable)
            {
                Commit(ref p, ref pending, context, tables, flows, table);
            }
        }
    }

    /// <summary>
    /// A packet of a new flow whose session an earlier packet of this batch committed (a burst, or
    /// the first fragment of its datagram): it gets that session's translation and becomes known.
    /// </summary>
    private static bool TryJoin(ref PacketMeta p, in PendingFlow pending, WorkerContext context, ConntrackTable table, uint now)
    {
        var existing = table.Find(pending.Original, now, out var direction);
        if (existing < 0)
        {
            return false;
        }

        ref var e = ref table[existing];
        var outgoing = pending.Current;
        var other = ConntrackTable.TupleOf(e, 1 - direction);
        var target = new FlowTuple(other.Destination, other.Source, other.DestinationPort, other.SourcePort, outgoing.Protocol);
        NatRewriter.Rewrite(context.Pool.Frame(p.Buffer, p.Offset, p.Length), p.L3Offset, p.L4Offset, outgoing, target);
        p.Flags = (p.Flags & ~PacketFlags.NewFlow) | PacketFlags.KnownFlow;
        p.Flow = existing;
        p.FlowDirection = (byte)direction;
        return true;
    }

    private void Commit(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, FlowState flows, ConntrackTable table)
    {
        var now = flows.Now;
        var frame = context.Pool.Frame(p.Buffer, p.Offset, p.Length);
        var outgoing = pending.Current;

        // A burst of one new flow in one batch: the first packet committed it.
        if (TryJoin(ref p, pending, context, table, now))
        {
            return;
        }

        if (table.IsFull)
        {
            Drop(ref p, (ushort)NatDrop.ConntrackFull);
            return;
        }

        var flags = pending.DnatRule > 0 ? FlowFlags.DestinationNat
            : pending.Balanced > 0 ? FlowFlags.DestinationNat | FlowFlags.LoadBalanced
            : FlowFlags.None;
        var source = outgoing.Source;
        var sourcePort = outgoing.SourcePort;
        string? how = null;
        var allocated = false;
        if (!pending.Bridged)
        {
            var rule = SelectSnat(ref p, pending, tables, context.Snapshot.LoadBalancer, out var staticAddress);
            if (staticAddress != 0)
            {
                source = staticAddress;
                flags |= FlowFlags.SourceNat;
                how = "1:1";
            }
            else if (rule is not null)
            {
                if (!flows.Nat.TryAllocate(table, now, outgoing, rule, tables.GatewayAddressOf(p.Domain), out source, out sourcePort))
                {
                    Drop(ref p, (ushort)NatDrop.PortsExhausted);
                    return;
                }

                allocated = true;
                flags |= FlowFlags.SourceNat | (rule.EndpointIndependent ? FlowFlags.EndpointIndependent : FlowFlags.None);
                how = rule.Description;
            }
        }

        var reply = NatPortAllocator.Reply(outgoing, source, sourcePort);
        // The allocator has already checked the reply tuple of what it handed out.
        if (!allocated && table.Contains(reply, now))
        {
            Drop(ref p, (ushort)NatDrop.TupleCollision);
            return;
        }

        var state = outgoing.Protocol == IpProtocol.Tcp ? ConntrackState.TcpSynSent : ConntrackState.Unreplied;
        var entry = table.Insert(pending.Original, reply, state, flags, now + tables.Timeouts.For(outgoing.Protocol, state));
        if (entry < 0)
        {
            Drop(ref p, (ushort)NatDrop.ConntrackFull);
            return;
        }

        if ((flags & FlowFlags.EndpointIndependent) != 0)
        {
            flows.Nat.Hold(outgoing.Protocol, outgoing.Source, outgoing.SourcePort, source, sourcePort);
        }

        if ((flags & FlowFlags.SourceNat) != 0)
        {
            NatRewriter.Rewrite(frame, p.L3Offset, p.L4Offset, outgoing, outgoing with { Source = source, SourcePort = sourcePort });
        }

        p.Flow = entry;
        p.FlowDirection = 0;
        flows.Committed++;
        if (pending.Balanced > 0)
        {
            flows.Balancer.Opened(pending.Backend, pending.Original.Source, outgoing.DestinationPort, now);
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "commit", how is null
                ? $"flow {entry}: {pending.Original}, no SNAT"
                : $"flow {entry}: SNAT ({how}) {outgoing} → {outgoing with { Source = source, SourcePort = sourcePort }}");
        }
    }

    /// <summary>A load-balanced flow: its server's full-NAT masquerade (or none); else hairpin first (client and server in one domain), then 1:1 outbound, then the first matching SNAT rule.</summary>
    private static SnatRule? SelectSnat(ref PacketMeta p, in PendingFlow pending, FirewallTables tables, LoadBalancer.LoadBalancerTables balancer, out uint staticAddress)
    {
        staticAddress = 0;
        if (pending.Balanced > 0)
        {
            return balancer.Servers[pending.Balanced - 1].Snat;
        }

        var ingressDomain = (p.Flags & PacketFlags.Routed) != 0 ? p.IngressDomain : p.Domain;
        if (pending.DnatRule > 0)
        {
            var hairpin = tables.Dnat[pending.DnatRule - 1].Hairpin;
            return hairpin is not null && p.Domain == ingressDomain ? hairpin : null;
        }

        if (tables.StaticOutbound.Count > 0 && tables.StaticOutbound.TryGetValue(pending.Current.Source, out staticAddress))
        {
            return null;
        }

        var rules = tables.Snat;
        if (rules.Length == 0)
        {
            return null;
        }

        var zone = tables.EgressZone(p.EgressSegment, p.Domain);
        foreach (var rule in rules)
        {
            if ((rule.EgressZone < 0 || rule.EgressZone == zone) && (rule.EgressDomain < 0 || rule.EgressDomain == p.Domain) && rule.MatchesSource(pending.Current.Source))
            {
                return rule;
            }
        }

        return null;
    }
}
