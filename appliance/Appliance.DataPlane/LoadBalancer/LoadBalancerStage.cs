using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.LoadBalancer;

public enum LbDrop : ushort
{
    /// <summary>A new flow to a VIP none of whose backends takes new flows (all down, draining or disabled): the VIP is down.</summary>
    NoBackend,
}

/// <summary>
/// The L4 load balancer: a new flow (conntrack missed, no DNAT rule claimed it) to a virtual
/// server's VIP, protocol and port picks a backend (persistence, Maglev, weighted round robin or
/// least connections) and has its destination rewritten to it, exactly like a DNAT rule's
/// translation; the NAT stage then commits the session (DNAT, plus an SNAT to the appliance's
/// address on the backend's segment in full NAT). Known flows never come here: conntrack
/// translates them, so they stay on their backend whatever happens to the pool. See README.md.
/// </summary>
public sealed class LoadBalancerStage() : PipelineStage("lb", typeof(LbDrop))
{
    /// <inheritdoc/>
    public override bool SkipsFinished => true;

    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var tables = context.Snapshot.LoadBalancer;
        if (tables.Servers.Length == 0)
        {
            return;
        }

        var flows = context.Flows;
        var balancer = flows.Balancer;
        var firewall = context.Snapshot.Firewall;
        var vips = tables.Vips;
        var packets = batch.Packets;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & PacketFlags.NewFlow) == 0)
            {
                continue;
            }

            ref var pending = ref flows.Pending[i];
            var tuple = pending.Current;
            if (pending.Bridged || pending.DnatRule != 0 || pending.State != ConnectionStates.New || !vips.Contains(tuple.Destination))
            {
                continue;
            }

            var server = tables.Find(tuple.Destination, tuple.Protocol, tuple.DestinationPort);
            if (server is null || (server.IngressZone >= 0 && server.IngressZone != firewall.IngressZone(p.IngressSegment)))
            {
                continue;
            }

            if (!balancer.Choose(server, tuple, flows.Now, out var choice))
            {
                Drop(ref p, (ushort)LbDrop.NoBackend);
                if ((p.Flags & PacketFlags.Traced) != 0)
                {
                    context.Tracer.Record(p.TraceId, Name, "vip down", $"{server.Name} ({new Ipv4Address(server.Vip)}:{server.Ports}): no backend takes new flows");
                }

                continue;
            }

            var backend = tables.Backends[choice.Backend];
            var target = tuple with
            {
                Destination = backend.Address,
                DestinationPort = backend.Port == 0 ? tuple.DestinationPort : backend.Port,
            };
            NatRewriter.Rewrite(context.Pool.Frame(p.Buffer, p.Offset, p.Length), p.L3Offset, p.L4Offset, tuple, target);
            pending.Current = target;
            pending.Balanced = server.Index + 1;
            pending.Backend = choice.Backend;
            if ((p.Flags & PacketFlags.Traced) != 0)
            {
                context.Tracer.Record(p.TraceId, Name, "vip", $"{server.Name} ({new Ipv4Address(server.Vip)}:{server.Ports}, {server.ModeName}): {Why(server, choice, backend)} → {target}");
            }
        }
    }

    /// <summary>The trace's "why" (only for traced packets: it allocates).</summary>
    private static string Why(LbVirtualServer server, in LbChoice choice, LbBackend backend)
    {
        if (choice.Persisted)
        {
            return $"persistence hit (client's backend for {server.PersistenceSeconds} s) {backend}";
        }

        return choice.Algorithm switch
        {
            LbAlgorithm.Maglev => $"maglev hash slot {choice.Slot} of {server.Maglev!.Size} → {backend}",
            LbAlgorithm.WeightedRoundRobin => $"wrr position {choice.Slot} of {server.RoundRobin.Length} → {backend} (weight {backend.Weight})",
            _ => $"least-conn {backend} with {choice.Active} active (weight {backend.Weight}) of {server.Eligible.Length} eligible",
        };
    }
}
