using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Decap;
using Isthmus.DataPlane.Encap;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Gateway;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// The one place where the packet path is composed. Decap is fixed first and encap fixed last;
/// the middle is an explicit, ordered list (bridge today; firewall, NAT, load balancer and route
/// slot in here without any change to the runner).
/// </summary>
public sealed class PacketPipeline
{
    private readonly PipelineStage[] _stages;

    public PacketPipeline(IReadOnlyList<PipelineStage> middle)
    {
        var stages = new List<PipelineStage> { new DecapStage() };
        stages.AddRange(middle);
        stages.Add(new EncapStage());
        _stages = [.. stages];
        for (var i = 0; i < _stages.Length; i++)
        {
            _stages[i].Index = (byte)i;
        }
    }

    /// <summary>
    /// The appliance's path, in netfilter's order for the L3 part:
    /// decap → bridge → fastpath (an established flow's packet with a current cached forwarding result
    /// is rewritten and given its egress here: the stages up to encap leave it alone) → gateway (frames for the gateway MAC: ARP/ND/ping for its own addresses,
    /// anti-spoofing, L3 parse) → conntrack (flow lookup; DNAT for new flows, translation for
    /// known ones) → lb (a new flow to a VIP picks a backend and has its destination rewritten like
    /// a DNAT rule's, so route, firewall and nat see the backend and the commit stores the
    /// translation: later packets are conntrack hits and stay on their backend) → route (LPM, next hop, MAC rewrite, TTL, MTU, MSS clamp) → firewall (zone-pair
    /// policy for new flows) → nat (SNAT and flow commit) → neighbor (routed packets whose next hop is
    /// unresolved wait here, after the policy and NAT saw them, as in Linux's neighbour output) → encap.
    /// Bridged frames pass the L3 stages untouched.
    /// </summary>
    public static PacketPipeline CreateDefault() =>
        new([new BridgeStage(), new FastPathStage(), new GatewayStage(), new ConntrackStage(), new LoadBalancerStage(), new RouteStage(), new FirewallStage(), new NatStage(), new NeighborStage()]);

    public IReadOnlyList<PipelineStage> Stages => _stages;

    /// <summary>
    /// Runs every stage over the batch, then settles what is left: drops are counted and their
    /// buffers returned; punts are counted (no control-plane consumer yet) and returned.
    /// Transmitted packets were handed to the ports' queues by encap.
    /// </summary>
    public void Run(PacketBatch batch, WorkerContext context)
    {
        foreach (var stage in _stages)
        {
            if (batch.Finished == batch.Count && stage.SkipsFinished)
            {
                // Every packet was forwarded by the fast path: nothing here for this stage.
                continue;
            }

            stage.Process(batch, context);
        }

        if (batch.Consumed != batch.Count)
        {
            // Something was dropped, punted or left over: count it and return its buffer.
            Settle(batch, context);
        }

        SendOriginated(context);
    }

    /// <summary>Runs every stage's heartbeat (aging, ARP/ND retries) and sends what they originated.</summary>
    public void Heartbeat(WorkerContext context)
    {
        foreach (var stage in _stages)
        {
            stage.Heartbeat(context);
        }

        SendOriginated(context);
    }

    /// <summary>The worker is stopping: every stage returns the buffers it holds.</summary>
    public void Release(WorkerContext context)
    {
        foreach (var stage in _stages)
        {
            stage.Release(context);
        }
    }

    /// <summary>
    /// What the stages originated (replies, errors, resolved packets) leaves through encap. The worker
    /// also calls it after serving queries that originate frames (GARP bursts).
    /// </summary>
    public void SendOriginated(WorkerContext context)
    {
        var originated = context.Originated;
        if (originated.Count > 0)
        {
            _stages[^1].Process(originated, context);
            if (originated.Consumed != originated.Count)
            {
                Settle(originated, context);
            }

            originated.Clear();
        }
    }

    private void Settle(PacketBatch batch, WorkerContext context)
    {
        var packets = batch.Packets;
        var pool = context.Pool;
        var counters = context.Counters;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            switch (p.Disposition)
            {
                case Disposition.Consumed:
                    break;
                case Disposition.Drop:
                    counters.CountDrop(p.DropStage, p.DropCode);
                    if ((p.Flags & PacketFlags.Traced) != 0)
                    {
                        context.Tracer.Record(p.TraceId, _stages[p.DropStage].Name, "drop", _stages[p.DropStage].DropReasons[p.DropCode]);
                    }

                    pool.Return(p.Buffer);
                    break;
                default:
                    // Continue past the last stage, or a punt with no consumer yet: both are bugs in
                    // composition rather than packet faults, but a packet never leaks its buffer.
                    counters.Unclaimed++;
                    pool.Return(p.Buffer);
                    break;
            }
        }
    }
}
