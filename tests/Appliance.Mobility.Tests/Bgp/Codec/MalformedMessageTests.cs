using Isthmus.Mobility.Bgp.Codec;
using static Isthmus.Mobility.Tests.Support.BgpFrames;

namespace Isthmus.Mobility.Tests.Bgp.Codec;

/// <summary>
/// The malformed-message corpus: every entry is a message on the wire and the NOTIFICATION code,
/// subcode and RFC 7606 action it must produce. Then a random-mutation loop over valid messages.
/// </summary>
public class MalformedMessageTests
{
    private const BgpErrorAction Reset = BgpErrorAction.SessionReset;
    private const BgpErrorAction Withdraw = BgpErrorAction.TreatAsWithdraw;
    private const BgpErrorAction Discard = BgpErrorAction.AttributeDiscard;

    public static TheoryData<string, byte[], BgpErrorCode, byte, BgpErrorAction> Corpus()
    {
        var badMarker = Frame(4);
        badMarker[3] = 0;
        var shortLength = Frame(4);
        shortLength[17] = 18;
        var longLength = Frame(4);
        longLength[17] = 40;
        var mpReach6 = (byte[])[0x80, 14, 30, 0, 2, 1, 16, .. new byte[16], 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0];
        var badMpPrefix = (byte[])[0x80, 14, 22, 0, 2, 1, 16, .. new byte[16], 0, 129];
        var mpUnreach6 = (byte[])[0x80, 15, 3, 0, 2, 1];
        return new()
        {
            { "marker not all ones", badMarker, BgpErrorCode.MessageHeader, BgpSubcode.ConnectionNotSynchronized, Reset },
            { "length below 19", shortLength, BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "length beyond the frame", longLength, BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "truncated header", new byte[10], BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "unknown type", Frame(9), BgpErrorCode.MessageHeader, BgpSubcode.BadMessageType, Reset },
            { "keepalive with a body", Frame(4, 0), BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "open too short", Frame(1, 4, 0, 1), BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "update too short", Frame(2, 0, 0), BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "notification too short", Frame(3, 6), BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, Reset },
            { "open version 3", Open(version: 3), BgpErrorCode.OpenMessage, BgpSubcode.UnsupportedVersionNumber, Reset },
            { "open hold time 1", Open(hold: 1), BgpErrorCode.OpenMessage, BgpSubcode.UnacceptableHoldTime, Reset },
            { "open hold time 2", Open(hold: 2), BgpErrorCode.OpenMessage, BgpSubcode.UnacceptableHoldTime, Reset },
            { "open identifier 0.0.0.0", Open(id: "0.0.0.0"), BgpErrorCode.OpenMessage, BgpSubcode.BadBgpIdentifier, Reset },
            { "open my AS 0", Open(myAs: 0, parameters: []), BgpErrorCode.OpenMessage, BgpSubcode.BadPeerAs, Reset },
            { "open 4-octet AS 0", Open(parameters: Capabilities(Cap(65, U32(0)))), BgpErrorCode.OpenMessage, BgpSubcode.BadPeerAs, Reset },
            { "open authentication parameter", Open(parameters: [1, 1, 0]), BgpErrorCode.OpenMessage, BgpSubcode.UnsupportedOptionalParameter, Reset },
            { "open capability overruns", Open(parameters: [2, 2, 65, 4]), BgpErrorCode.OpenMessage, BgpSubcode.Unspecific, Reset },
            { "open 4-octet AS capability of 3 octets", Open(parameters: Capabilities(Cap(65, 0, 0, 1))), BgpErrorCode.OpenMessage, BgpSubcode.Unspecific, Reset },
            { "withdrawn length overruns", Frame(2, 0, 200, 0, 0), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList, Reset },
            { "attribute length overruns the message", Frame(2, 0, 0, 0, 50, 0x40, 1, 1, 0), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList, Reset },
            { "withdrawn prefix /33", Update([33, 10, 0, 0, 0, 0], [], []), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField, Reset },
            { "nlri prefix overruns", Update([], Mandatory(), [24, 10, 0]), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField, Reset },
            { "unrecognized well-known attribute", Update([], [.. Mandatory(), .. Attr(0x40, 99, 1)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.UnrecognizedWellKnownAttribute, Reset },
            { "MP_REACH twice", Update([], [.. Origin(), .. AsPath(65001), .. mpReach6, .. mpReach6], []), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList, Reset },
            { "MP_UNREACH twice", Update([], [.. mpUnreach6, .. mpUnreach6], []), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList, Reset },
            { "MP_REACH prefix /129", Update([], [.. Origin(), .. AsPath(65001), .. badMpPrefix], []), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField, Reset },
            { "MP_REACH truncated", Update([], Attr(0x80, 14, 0, 2), []), BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError, Reset },
            { "MP_UNREACH truncated", Update([], Attr(0x80, 15, 0), []), BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError, Reset },
            { "ORIGIN 3", Update([], [.. Origin(3), .. AsPath(65001), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidOriginAttribute, Withdraw },
            { "ORIGIN of 2 octets", Update([], [.. Attr(0x40, 1, 0, 0), .. AsPath(65001), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.AttributeLengthError, Withdraw },
            { "ORIGIN flagged optional", Update([], [.. Attr(0xc0, 1, 0), .. AsPath(65001), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.AttributeFlagsError, Withdraw },
            { "NEXT_HOP 0.0.0.0", Update([], [.. Origin(), .. AsPath(65001), .. NextHop("0.0.0.0")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNextHopAttribute, Withdraw },
            { "NEXT_HOP multicast", Update([], [.. Origin(), .. AsPath(65001), .. NextHop("224.0.0.5")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNextHopAttribute, Withdraw },
            { "NEXT_HOP of 5 octets", Update([], [.. Origin(), .. AsPath(65001), .. Attr(0x40, 3, 1, 2, 3, 4, 5)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.AttributeLengthError, Withdraw },
            { "AS_PATH segment overruns", Update([], [.. Origin(), .. Attr(0x40, 2, 2, 3, 0, 0, 0, 1), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAsPath, Withdraw },
            { "AS_PATH segment type 7", Update([], [.. Origin(), .. Attr(0x40, 2, 7, 1, 0, 0, 0, 1), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAsPath, Withdraw },
            { "AS_PATH empty segment", Update([], [.. Origin(), .. Attr(0x40, 2, 2, 0), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAsPath, Withdraw },
            { "NEXT_HOP missing", Update([], [.. Origin(), .. AsPath(65001)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MissingWellKnownAttribute, Withdraw },
            { "ORIGIN missing", Update([], [.. AsPath(65001), .. NextHop("192.0.2.1")], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MissingWellKnownAttribute, Withdraw },
            { "AS_PATH missing for MP_REACH", Update([], [.. Origin(), .. mpReach6], []), BgpErrorCode.UpdateMessage, BgpSubcode.MissingWellKnownAttribute, Withdraw },
            { "COMMUNITIES of 3 octets", Update([], [.. Mandatory(), .. Attr(0xc0, 8, 1, 2, 3)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError, Withdraw },
            { "LARGE_COMMUNITY of 8 octets", Update([], [.. Mandatory(), .. Attr(0xc0, 32, 0, 0, 0, 1, 0, 0, 0, 2)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError, Withdraw },
            { "MED of 2 octets", Update([], [.. Mandatory(), .. Attr(0x80, 4, 0, 1)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.AttributeLengthError, Withdraw },
            { "attribute overruns the attribute list", Update([], [.. Mandatory(), 0xc0, 8, 40, 1, 2], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList, Withdraw },
            { "MP_REACH next hop of 5 octets", Update([], [.. Origin(), .. AsPath(65001), 0x80, 14, 12, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0, 8, 0x20], []), BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError, Withdraw },
            { "ATOMIC_AGGREGATE of 1 octet", Update([], [.. Mandatory(), .. Attr(0x40, 6, 0)], Prefix("10.0.0.0/8")), BgpErrorCode.UpdateMessage, BgpSubcode.AttributeLengthError, Discard },
            { "route refresh of 22 octets", Frame(5, 0, 1, 0), BgpErrorCode.RouteRefreshMessage, BgpSubcode.InvalidMessageLength, Reset },
        };
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Malformed_message_yields_the_right_notification(string name, byte[] wire, BgpErrorCode code, byte subcode, BgpErrorAction action)
    {
        var result = BgpMessage.Decode(wire);
        Assert.True(result.Error is not null, name);
        Assert.Equal((code, subcode, action), (result.Error.Code, result.Error.Subcode, result.Error.Action));

        // A session reset has no message; treat-as-withdraw and discard keep the UPDATE so its NLRI can be withdrawn.
        Assert.Equal(action == Reset, result.Message is null);
        var notification = result.Error.ToNotification();
        Assert.Equal(code, Assert.IsType<NotificationMessage>(BgpMessage.Decode(notification.Encode()).Message).Code);
    }

    [Fact]
    public void Treat_as_withdraw_keeps_the_nlri_to_withdraw()
    {
        var result = BgpMessage.Decode(Update([], [.. Origin(7), .. AsPath(65001), .. NextHop("192.0.2.1")], [.. Prefix("10.1.0.0/16"), .. Prefix("10.2.0.0/16")]));
        var update = Assert.IsType<UpdateMessage>(result.Message);
        Assert.Equal(BgpErrorAction.TreatAsWithdraw, result.Error!.Action);
        Assert.Equal(2, update.Announced.Count());
    }

    [Fact]
    public void Bad_header_length_is_caught_while_framing()
    {
        var wire = Frame(4);
        wire[16] = 0x20;
        Assert.Equal(-1, BgpMessage.FrameLength(wire, out var error));
        Assert.Equal((BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength), (error!.Code, error.Subcode));
    }

    [Fact]
    public void Random_mutations_never_throw_and_always_name_a_notification()
    {
        var random = new Random(6);
        var samples = ValidSamples().SelectMany(m => new[] { m.Encode(new BgpDecodeContext(true)), m.Encode(new BgpDecodeContext(false)) }).ToArray();
        for (var i = 0; i < 50_000; i++)
        {
            var wire = Mutate(random, samples[random.Next(samples.Length)]);
            var context = new BgpDecodeContext(random.Next(2) == 0);
            var result = BgpMessage.Decode(wire, context);
            if (result.Error is { } error)
            {
                Assert.InRange((int)error.Code, 1, 7);
                Assert.Equal(error.Action == BgpErrorAction.SessionReset, result.Message is null);
                Assert.True(error.Action == BgpErrorAction.SessionReset || result.Message is UpdateMessage);
            }
            else
            {
                Assert.NotNull(result.Message);
            }

            // Whatever decoded must encode again.
            result.Message?.Encode(context);
            BgpMessage.FrameLength(wire, out _);
        }
    }

    private static byte[] Mutate(Random random, byte[] valid)
    {
        var wire = (byte[])valid.Clone();
        var mutations = random.Next(1, 4);
        for (var m = 0; m < mutations; m++)
        {
            switch (random.Next(5))
            {
                case 0 when wire.Length > 19:
                    wire[random.Next(19, wire.Length)] = (byte)random.Next(256);
                    break;
                case 1 when wire.Length > 0:
                    wire[random.Next(wire.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                case 2:
                    wire = wire[..random.Next(Math.Min(19, wire.Length), wire.Length + 1)];
                    break;
                case 3:
                    var extra = new byte[random.Next(1, 40)];
                    random.NextBytes(extra);
                    wire = [.. wire, .. extra];
                    break;
                default:
                    // Keep the header consistent so the body parser, not the framer, meets the damage.
                    break;
            }
        }

        if (random.Next(3) > 0 && wire.Length >= 19 && wire.Length <= 4096)
        {
            wire[16] = (byte)(wire.Length >> 8);
            wire[17] = (byte)wire.Length;
            wire.AsSpan(0, 16).Fill(0xff);
        }

        return wire;
    }
}
