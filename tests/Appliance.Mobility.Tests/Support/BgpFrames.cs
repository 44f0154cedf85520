using System.Buffers.Binary;
using System.Net;
using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Tests.Support;

/// <summary>Builds BGP messages byte by byte, including wrong ones, for the malformed-message corpus.</summary>
internal static class BgpFrames
{
    public static byte[] Frame(byte type, params byte[] body)
    {
        var frame = new byte[19 + body.Length];
        frame.AsSpan(0, 16).Fill(0xff);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), (ushort)frame.Length);
        frame[18] = type;
        body.CopyTo(frame, 19);
        return frame;
    }

    public static byte[] Update(byte[] withdrawn, byte[] attributes, byte[] nlri) =>
        Frame(2, [.. U16(withdrawn.Length), .. withdrawn, .. U16(attributes.Length), .. attributes, .. nlri]);

    public static byte[] Attr(byte flags, byte type, params byte[] value) => [flags, type, (byte)value.Length, .. value];

    public static byte[] Origin(byte value = 0) => Attr(0x40, 1, value);

    public static byte[] AsPath(params uint[] asns)
    {
        var value = new List<byte> { 2, (byte)asns.Length };
        foreach (var asn in asns)
        {
            value.AddRange(U32(asn));
        }

        return Attr(0x40, 2, [.. value]);
    }

    public static byte[] NextHop(string address) => Attr(0x40, 3, IPAddress.Parse(address).GetAddressBytes());

    /// <summary>ORIGIN, AS_PATH and NEXT_HOP, all valid.</summary>
    public static byte[] Mandatory() => [.. Origin(), .. AsPath(65001), .. NextHop("192.0.2.1")];

    public static byte[] Prefix(string cidr)
    {
        var network = IPNetwork.Parse(cidr);
        var bytes = network.BaseAddress.GetAddressBytes();
        return [(byte)network.PrefixLength, .. bytes.AsSpan(0, (network.PrefixLength + 7) / 8)];
    }

    public static byte[] U16(int value) => [(byte)(value >> 8), (byte)value];

    public static byte[] U32(uint value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    public static byte[] Open(byte version = 4, ushort myAs = 65001, ushort hold = 90, string id = "192.0.2.1", byte[]? parameters = null)
    {
        parameters ??= Capabilities(Cap(65, U32(65001)), Cap(1, 0, 1, 0, 1), Cap(2));
        return Frame(1, [version, .. U16(myAs), .. U16(hold), .. IPAddress.Parse(id).GetAddressBytes(), (byte)parameters.Length, .. parameters]);
    }

    public static byte[] Cap(byte code, params byte[] value) => [code, (byte)value.Length, .. value];

    public static byte[] Capabilities(params byte[][] capabilities)
    {
        byte[] all = [.. capabilities.SelectMany(c => c)];
        return [2, (byte)all.Length, .. all];
    }

    public static BgpMessage[] ValidSamples() =>
    [
        KeepaliveMessage.Instance,
        new OpenMessage
        {
            As = 4_200_000_001,
            HoldTime = 90,
            BgpIdentifier = IPAddress.Parse("10.0.0.1"),
            Multiprotocol = [AfiSafi.Ipv4Unicast, AfiSafi.Ipv6Unicast],
            RouteRefresh = true,
            FourOctetAs = true,
        },
        new UpdateMessage
        {
            Withdrawn = [IPNetwork.Parse("198.51.100.0/24")],
            Origin = BgpOrigin.Igp,
            AsPath = [new AsPathSegment(AsPathSegmentType.AsSequence, [65001, 4_200_000_000])],
            NextHop = IPAddress.Parse("192.0.2.1"),
            MultiExitDisc = 10,
            LocalPref = 200,
            Communities = [new Community(65001, 100), Community.NoExport],
            LargeCommunities = [new LargeCommunity(65001, 1, 2)],
            MpReach = new MpReachNlri(AfiSafi.Ipv6Unicast, IPAddress.Parse("2001:db8::1"), IPAddress.Parse("fe80::1"), [IPNetwork.Parse("2001:db8:1::/48")]),
            MpUnreach = new MpUnreachNlri(AfiSafi.Ipv6Unicast, [IPNetwork.Parse("2001:db8:2::/64")]),
            Nlri = [IPNetwork.Parse("203.0.113.7/32"), IPNetwork.Parse("10.0.0.0/8")],
        },
        new NotificationMessage(BgpErrorCode.Cease, BgpSubcode.AdministrativeShutdown, [3, (byte)'b', (byte)'y', (byte)'e']),
        new RouteRefreshMessage(AfiSafi.Ipv6Unicast),
    ];
}
