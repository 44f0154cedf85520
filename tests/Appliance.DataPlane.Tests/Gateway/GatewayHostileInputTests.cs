using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Gateway;

/// <summary>Malformed and hostile frames for the gateway: each is handled or counted, never a crash or a leak.</summary>
public class GatewayHostileInputTests
{
    private static readonly byte[][] Seeds =
    [
        ArpRequest(HostA, HostAIp, Gw10Ip, ethernetDestination: Gw10),
        Ping(HostA, Gw10, HostAIp, Gw10Ip),
        Ping6(HostA, Gw10, HostA6, Gw106),
        NeighborSolicitation(HostA, HostA6, Gw106),
        Udp(HostA, Gw10, HostAIp, Host20Ip),
        Udp6(HostA, Gw10, HostA6, Host206),
        Syn(HostA, Gw10, HostAIp, Host20Ip, 1460),
    ];

    /// <summary>A seed frame (for the gateway MAC or multicast) with some bytes after the MACs overwritten, and maybe cut short.</summary>
    private static Gen<byte[]> Mutants =>
        from seed in Gen.Elements(Seeds)
        from edits in Gen.ListOf(Gen.Zip(Gen.Choose(12, seed.Length - 1), Gen.Choose(0, 255)))
        from cut in Gen.Choose(0, seed.Length - 12)
        from multicast in Gen.Elements(false, false, true)
        select Mutate(seed, [.. edits], cut, multicast);

    private static byte[] Mutate(byte[] seed, (int At, int Value)[] edits, int cut, bool multicast)
    {
        var frame = seed.ToArray();
        foreach (var (at, value) in edits.Take(6))
        {
            frame[at] = (byte)value;
        }

        if (multicast)
        {
            MacAddress.Parse("33:33:ff:00:00:01").WriteTo(frame);
        }

        return frame[..(frame.Length - (cut % 3 == 0 ? cut : 0))];
    }

    [Fact]
    public void Mutated_frames_for_the_gateway_never_crash_or_leak_buffers()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with { ProxyArp = true, AntiSpoofing = true, MssClamp = 1300 }));
        lab.Announce(Acc20, Host20, Host20Ip);

        Prop.ForAll(Mutants.ToArbitrary(), frame =>
        {
            lab.Receive(Acc10, frame);
            lab.ClearSent();
            return lab.Neighbors.HeldPackets == lab.Worker.Pool.Outstanding;
        }).QuickCheckThrowOnFailure();

        lab.Tick(5); // unanswered resolutions fail and free what they hold
        lab.ClearSent();
    }

    [Fact]
    public void A_directed_broadcast_to_a_connected_subnet_is_not_routed()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Ipv4Address.Parse("10.20.0.255")));

        Assert.Equal(1, lab.Drops("route", "BadDestination"));
        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));
    }
}
