using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

public enum FirewallDrop : ushort
{
    /// <summary>No policy for the zone pair (default deny between zones), or no rule matched and the policy's default is drop.</summary>
    DefaultDeny,

    /// <summary>A rule with action drop matched.</summary>
    RuleDrop,

    /// <summary>A rule with action reject matched (a RST or ICMP unreachable was sent back).</summary>
    RuleReject,

    /// <summary>A known flow's packet the TCP state machine does not allow (ct state invalid).</summary>
    InvalidState,

    /// <summary>IPv6 between different zones: IPv6 is not classified, and only allowed within a zone.</summary>
    Ipv6BetweenZones,
}

/// <summary>
/// The zone-pair policy for new flows: ingress zone (of the ingress segment) and egress zone (of
/// the egress segment, or of the egress domain when flooding) pick the policy; its tuple-space
/// classifier finds the first matching rule; allow / drop / reject, with per-rule counters and a
/// rate-limited log. Known flows skip the classifier (conntrack admitted them) and only get their
/// state checked. See README.md.
/// </summary>
public sealed class FirewallStage() : PipelineStage("firewall", typeof(FirewallDrop))
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
        var packets = batch.Packets;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue)
            {
                continue;
            }

            if ((p.Flags & (PacketFlags.NewFlow | PacketFlags.KnownFlow)) == 0)
            {
                if ((p.Flags & (PacketFlags.L3Parsed | PacketFlags.Ipv6 | PacketFlags.Local)) == (PacketFlags.L3Parsed | PacketFlags.Ipv6)
                    && tables.Filtering && !tables.AllowIpv6BetweenZones
                    && tables.IngressZone(p.IngressSegment) != tables.EgressZone(p.EgressSegment, p.Domain))
                {
                    Drop(ref p, (ushort)FirewallDrop.Ipv6BetweenZones);
                }

                continue;
            }

            if ((p.Flags & PacketFlags.KnownFlow) != 0)
            {
                // A fast-path packet's transition was valid (conntrack checked); the rest may not be.
                if ((p.Flags & PacketFlags.FastPath) == 0 && flows.Pending[i].InvalidTransition)
                {
                    Drop(ref p, (ushort)FirewallDrop.InvalidState);
                }

                continue;
            }

            ref var pending = ref flows.Pending[i];

            if (!tables.Filtering)
            {
                pending.Allowed = true;
                continue;
            }

            Classify(ref p, ref pending, context, tables, flows);
        }
    }

    private void Classify(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, FlowState flows)
    {
        var from = tables.IngressZone(p.IngressSegment);
        var to = tables.EgressZone(p.EgressSegment, p.Domain);
        var policyIndex = tables.PairPolicy[(from * tables.ZoneCount) + to];
        var traced = (p.Flags & PacketFlags.Traced) != 0;
        if (policyIndex < 0)
        {
            if (from == to)
            {
                pending.Allowed = true;
                if (traced)
                {
                    context.Tracer.Record(p.TraceId, Name, "allow", $"within zone {tables.ZoneNames[from]} (no policy: allow)");
                }
            }
            else
            {
                Drop(ref p, (ushort)FirewallDrop.DefaultDeny);
                if (traced)
                {
                    context.Tracer.Record(p.TraceId, Name, "deny", $"{tables.ZoneNames[from]} → {tables.ZoneNames[to]} has no policy (default deny)");
                }
            }

            return;
        }

        var policy = tables.Policies[policyIndex];
        var current = pending.Current;
        var key = current.Protocol switch
        {
            IpProtocol.Tcp or IpProtocol.Udp => new ClassifierKey(current.Source, current.Destination, current.Protocol, current.SourcePort, current.DestinationPort, pending.State),
            IpProtocol.Icmp => new ClassifierKey(current.Source, current.Destination, current.Protocol, 0, pending.IcmpType, pending.State),
            _ => new ClassifierKey(current.Source, current.Destination, current.Protocol, 0, 0, pending.State),
        };
        var match = policy.Classifier.Classify(key);
        FirewallAction action;
        if (match >= 0)
        {
            ref readonly var rule = ref policy.Rules[match];
            action = rule.Action;
            flows.RuleHits[rule.Counter]++;
            if (rule.Log)
            {
                flows.Log.Write(flows.Now, rule.Id, action, pending.Original);
            }
        }
        else
        {
            action = policy.DefaultAction;
        }

        if (traced)
        {
            context.Tracer.Record(p.TraceId, Name, action.ToString().ToLowerInvariant(),
                match >= 0
                    ? $"{policy.From} → {policy.To} rule {policy.Rules[match].Id} ({pending.State})"
                    : $"{policy.From} → {policy.To} no rule matched: policy default {policy.DefaultAction}");
        }

        switch (action)
        {
            case FirewallAction.Allow:
                pending.Allowed = true;
                break;
            case FirewallAction.Drop:
                Drop(ref p, (ushort)(match >= 0 ? FirewallDrop.RuleDrop : FirewallDrop.DefaultDeny));
                break;
            default:
                if (!pending.LaterFragment && RejectBuilder.Send(context, ref p, pending))
                {
                    flows.RejectsSent++;
                }

                Drop(ref p, (ushort)FirewallDrop.RuleReject);
                break;
        }
    }
}
