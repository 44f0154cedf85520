using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Gateway;

/// <summary>
/// Gratuitous ARP for the gateway's own addresses (and extra addresses such as VIPs on its link), the
/// reaction to a workload arriving at this site: a request and a reply (gobgp / MetalLB / keepalived
/// send both, because some stacks only update their cache from one of them; RFC 5227 section 3), from
/// the gateway MAC, broadcast. For IPv6 addresses an unsolicited neighbor advertisement to all nodes
/// (RFC 4861 section 7.2.6). Runs on the worker thread only: the control plane posts it through
/// <see cref="Workers.WorkerQueries"/>, and the worker sends what it originated right after.
/// </summary>
public static class GarpAnnouncer
{
    /// <summary>
    /// Originates the announcements for <paramref name="domain"/>'s gateway toward one segment
    /// (<paramref name="segment"/>, and <paramref name="vtep"/> behind a VXLAN segment) or, with
    /// <paramref name="segment"/> = -1, flooded to every segment of the domain. Returns how many frames
    /// it originated (0 when the domain has no gateway, or no buffer was free).
    /// </summary>
    public static int Announce(WorkerContext context, int domain, int segment, uint vtep, ReadOnlySpan<uint> extraIpv4)
    {
        ArgumentNullException.ThrowIfNull(context);
        var gw = context.Snapshot.L3.Gateway(domain);
        if (gw is null || segment >= context.Snapshot.Segments.Length || (segment >= 0 && context.Snapshot.Segments[segment].Domain != domain))
        {
            return 0;
        }

        var sent = 0;
        foreach (var address in gw.Ipv4)
        {
            sent += Arp(context, gw, segment, vtep, new Ipv4Address(address.Ipv4));
        }

        foreach (var address in extraIpv4)
        {
            sent += Arp(context, gw, segment, vtep, new Ipv4Address(address));
        }

        foreach (var address in gw.Ipv6)
        {
            sent += Send(context, gw, segment, vtep, static (frame, gw, ip) => L3Messages.UnsolicitedNeighborAdvertisement(frame, gw.Mac, new Ipv6Address(ip.Hi, ip.Lo), router: true), address);
        }

        return sent;
    }

    private static int Arp(WorkerContext context, GatewayInterface gw, int segment, uint vtep, Ipv4Address ip)
    {
        var address = new InterfaceAddress(0, ip.Value, 32);
        return Send(context, gw, segment, vtep, static (frame, gw, a) => L3Messages.ArpFrame(frame, ArpOpcode.Request, MacAddress.Broadcast, gw.Mac, gw.Mac, new Ipv4Address(a.Ipv4), default, new Ipv4Address(a.Ipv4)), address)
            + Send(context, gw, segment, vtep, static (frame, gw, a) => L3Messages.ArpFrame(frame, ArpOpcode.Reply, MacAddress.Broadcast, gw.Mac, gw.Mac, new Ipv4Address(a.Ipv4), gw.Mac, new Ipv4Address(a.Ipv4)), address);
    }

    private delegate int Builder(Span<byte> frame, GatewayInterface gw, InterfaceAddress address);

    private static int Send(WorkerContext context, GatewayInterface gw, int segment, uint vtep, Builder build, InterfaceAddress address)
    {
        var pool = context.Pool;
        var buffer = pool.Rent();
        if (buffer < 0)
        {
            return 0;
        }

        var length = build(pool.Frame(buffer, PacketPool.Headroom, 128), gw, address);
        ref var p = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref p))
        {
            pool.Return(buffer);
            return 0;
        }

        p.Domain = (ushort)gw.Domain;
        if (segment < 0)
        {
            p.Flags |= PacketFlags.Flood;
        }
        else
        {
            p.EgressSegment = segment;
            p.EgressVtep = context.Snapshot.Segments[segment].Kind == PortKind.Vxlan ? vtep : 0;
        }

        return 1;
    }
}
