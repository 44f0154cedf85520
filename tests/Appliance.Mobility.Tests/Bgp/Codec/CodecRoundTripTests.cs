using System.Net;
using FsCheck;
using FsCheck.Fluent;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Tests.Support;

namespace Isthmus.Mobility.Tests.Bgp.Codec;

public class CodecRoundTripTests
{
    private static readonly Gen<uint> Uint32 =
        from hi in Gen.Choose(0, 0xffff)
        from lo in Gen.Choose(0, 0xffff)
        select ((uint)hi << 16) | (uint)lo;

    private static Gen<byte[]> Bytes(int length) => Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), length);

    private static Gen<IPNetwork> Prefix(bool ipv6) =>
        from bytes in Bytes(ipv6 ? 16 : 4)
        from length in Gen.Choose(0, ipv6 ? 128 : 32)
        select Mask(bytes, length);

    private static IPNetwork Mask(byte[] bytes, int length)
    {
        for (var bit = length; bit < bytes.Length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPNetwork(new IPAddress(bytes), length);
    }

    private static readonly Gen<IPAddress> UnicastIpv4 =
        from first in Gen.Choose(1, 223)
        from rest in Bytes(3)
        select new IPAddress([(byte)first, .. rest]);

    private static readonly Gen<AsPathSegment> Segment =
        from type in Gen.Elements(AsPathSegmentType.AsSequence, AsPathSegmentType.AsSet)
        from asns in Gen.ListOf(Uint32).Where(l => l.Count is > 0 and < 20)
        select new AsPathSegment(type, [.. asns]);

    private static Gen<T?> Maybe<T>(Gen<T> gen)
        where T : class =>
        Gen.OneOf(Gen.Constant<T?>(null), gen.Select(v => (T?)v));

    private static readonly Gen<UpdateMessage> Updates =
        from withdrawn in Gen.ArrayOf(Prefix(false)).Where(a => a.Length < 10)
        from nlri in Gen.ArrayOf(Prefix(false)).Where(a => a.Length < 10)
        from origin in Gen.Elements(BgpOrigin.Igp, BgpOrigin.Egp, BgpOrigin.Incomplete)
        from path in Gen.ArrayOf(Segment).Where(a => a.Length < 4)
        from nextHop in UnicastIpv4
        from med in Gen.OneOf(Gen.Constant<uint?>(null), Uint32.Select(v => (uint?)v))
        from localPref in Gen.OneOf(Gen.Constant<uint?>(null), Uint32.Select(v => (uint?)v))
        from communities in Gen.ArrayOf(Uint32.Select(v => new Community(v))).Where(a => a.Length < 8)
        from large in Gen.ArrayOf(
            from g in Uint32 from a in Uint32 from b in Uint32 select new LargeCommunity(g, a, b)).Where(a => a.Length < 5)
        from reach in Maybe(
            from nh in Bytes(16)
            from prefixes in Gen.ArrayOf(Prefix(true)).Where(a => a.Length < 6)
            select new MpReachNlri(AfiSafi.Ipv6Unicast, new IPAddress(nh), null, prefixes))
        from unreach in Maybe(
            from prefixes in Gen.ArrayOf(Prefix(true)).Where(a => a.Length < 6)
            select new MpUnreachNlri(AfiSafi.Ipv6Unicast, prefixes))
        select new UpdateMessage
        {
            Withdrawn = withdrawn,
            Nlri = nlri,
            Origin = origin,
            AsPath = path,
            NextHop = nextHop,
            MultiExitDisc = med,
            LocalPref = localPref,
            Communities = communities,
            LargeCommunities = large,
            MpReach = reach,
            MpUnreach = unreach,
        };

    [Fact]
    public void Update_round_trips_through_the_wire_format() => Properties.Check(Updates, update =>
    {
        foreach (var fourOctet in new[] { true, false })
        {
            var context = new BgpDecodeContext(fourOctet);
            var wire = update.Encode(context);
            var result = BgpMessage.Decode(wire, context);
            Assert.Null(result.Error);
            var decoded = Assert.IsType<UpdateMessage>(result.Message);
            Assert.Equal(wire, decoded.Encode(context));
            Assert.Equal(update.Nlri, decoded.Nlri);
            Assert.Equal(update.Withdrawn, decoded.Withdrawn);
            Assert.Equal(update.Communities, decoded.Communities);
            Assert.Equal(update.LargeCommunities, decoded.LargeCommunities);
            Assert.Equal(update.NextHop, decoded.NextHop);
            Assert.Equal(update.MpReach?.Nlri ?? [], decoded.MpReach?.Nlri ?? []);
            Assert.Equal(update.MpUnreach?.Withdrawn ?? [], decoded.MpUnreach?.Withdrawn ?? []);
            if (fourOctet)
            {
                Assert.Equal(update.AsPath, decoded.AsPath);
            }
        }
    });

    private static readonly Gen<OpenMessage> Opens =
        from asn in Uint32.Where(a => a != 0)
        from hold in Gen.OneOf(Gen.Constant(0), Gen.Choose(3, 65535))
        from id in Uint32.Where(i => i != 0)
        from families in Gen.SubListOf([AfiSafi.Ipv4Unicast, AfiSafi.Ipv6Unicast])
        from routeRefresh in Gen.Elements(true, false)
        select new OpenMessage
        {
            As = asn,
            HoldTime = (ushort)hold,
            BgpIdentifier = new IPAddress([(byte)(id >> 24), (byte)(id >> 16), (byte)(id >> 8), (byte)id]),
            Multiprotocol = [.. families],
            RouteRefresh = routeRefresh,
            FourOctetAs = true,
        };

    [Fact]
    public void Open_round_trips_with_capabilities() => Properties.Check(Opens, open =>
    {
        var result = BgpMessage.Decode(open.Encode());
        Assert.Null(result.Error);
        Assert.Equal(open, Assert.IsType<OpenMessage>(result.Message));
    });

    [Fact]
    public void Open_with_a_4_octet_as_writes_as_trans_in_my_as()
    {
        var wire = new OpenMessage { As = 4_200_000_001, HoldTime = 90, BgpIdentifier = IPAddress.Parse("10.0.0.1"), FourOctetAs = true }.Encode();
        Assert.Equal(OpenMessage.AsTrans, (wire[20] << 8) | wire[21]);
        Assert.Equal(4_200_000_001u, Assert.IsType<OpenMessage>(BgpMessage.Decode(wire).Message).As);
    }

    [Fact]
    public void Notification_and_route_refresh_round_trip()
    {
        var gen =
            from code in Gen.Choose(1, 7)
            from subcode in Gen.Choose(0, 255)
            from data in Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b)).Where(d => d.Length < 64)
            from afi in Gen.Choose(0, 65535)
            from safi in Gen.Choose(0, 255)
            select (new NotificationMessage((BgpErrorCode)code, (byte)subcode, data), new RouteRefreshMessage(new AfiSafi((ushort)afi, (byte)safi)));
        Properties.Check(gen, pair =>
        {
            Assert.Equal(pair.Item1, BgpMessage.Decode(pair.Item1.Encode()).Message);
            Assert.Equal(pair.Item2, BgpMessage.Decode(pair.Item2.Encode()).Message);
        });
    }

    [Fact]
    public void Keepalive_is_a_bare_19_octet_header()
    {
        var wire = KeepaliveMessage.Instance.Encode();
        Assert.Equal(19, wire.Length);
        Assert.Same(KeepaliveMessage.Instance, BgpMessage.Decode(wire).Message);
    }

    [Fact]
    public void Administrative_shutdown_carries_the_rfc8203_message()
    {
        var notification = NotificationMessage.AdministrativeShutdown("maintenance: moving to rack 12");
        var decoded = Assert.IsType<NotificationMessage>(BgpMessage.Decode(notification.Encode()).Message);
        Assert.Equal(BgpErrorCode.Cease, decoded.Code);
        Assert.Equal(BgpSubcode.AdministrativeShutdown, decoded.Subcode);
        Assert.Equal("maintenance: moving to rack 12", decoded.ShutdownMessage);
        Assert.True(NotificationMessage.AdministrativeShutdown(new string('é', 200)).Data[0] <= 255);
    }

    [Fact]
    public void End_of_rib_markers_are_recognized()
    {
        Assert.True(Assert.IsType<UpdateMessage>(BgpMessage.Decode(new UpdateMessage().Encode()).Message).IsEndOfRib);
        var v6 = new UpdateMessage { MpUnreach = new MpUnreachNlri(AfiSafi.Ipv6Unicast, []) };
        Assert.True(Assert.IsType<UpdateMessage>(BgpMessage.Decode(v6.Encode()).Message).IsEndOfRib);
    }

    [Fact]
    public void Frame_length_asks_for_more_bytes_until_a_message_is_whole()
    {
        var wire = BgpFrames.ValidSamples()[2].Encode();
        Assert.Equal(0, BgpMessage.FrameLength(wire.AsSpan(0, 18), out _));
        Assert.Equal(0, BgpMessage.FrameLength(wire.AsSpan(0, wire.Length - 1), out _));
        Assert.Equal(wire.Length, BgpMessage.FrameLength(wire, out var error));
        Assert.Null(error);
    }
}
