using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>
/// UPDATE (RFC 4271 §4.3): withdrawn IPv4 routes, path attributes, IPv4 NLRI. IPv6 travels in
/// MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760).
/// <code>
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// |   Withdrawn Routes (variable)                       |
/// |   Total Path Attribute Length (2 octets)            |
/// |   Path Attributes (variable)                        |
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
/// </code>
/// Decoding follows RFC 7606: errors that leave the NLRI locatable are "treat-as-withdraw" or
/// "attribute discard"; the rest reset the session.
/// </summary>
public sealed record UpdateMessage : BgpMessage
{
    public const int MinLength = HeaderLength + 4;

    public IReadOnlyList<IPNetwork> Withdrawn { get; init; } = [];

    public IReadOnlyList<IPNetwork> Nlri { get; init; } = [];

    public BgpOrigin? Origin { get; init; }

    public IReadOnlyList<AsPathSegment>? AsPath { get; init; }

    public IPAddress? NextHop { get; init; }

    public uint? MultiExitDisc { get; init; }

    public uint? LocalPref { get; init; }

    public bool AtomicAggregate { get; init; }

    public IReadOnlyList<Community> Communities { get; init; } = [];

    public IReadOnlyList<LargeCommunity> LargeCommunities { get; init; } = [];

    public MpReachNlri? MpReach { get; init; }

    public MpUnreachNlri? MpUnreach { get; init; }

    public IReadOnlyList<RawAttribute> OtherAttributes { get; init; } = [];

    public override BgpMessageType Type => BgpMessageType.Update;

    /// <summary>Every prefix this UPDATE announces, IPv4 NLRI and MP_REACH NLRI.</summary>
    public IEnumerable<IPNetwork> Announced => MpReach is null ? Nlri : Nlri.Concat(MpReach.Nlri);

    /// <summary>Every prefix this UPDATE withdraws, IPv4 withdrawn routes and MP_UNREACH.</summary>
    public IEnumerable<IPNetwork> AllWithdrawn => MpUnreach is null ? Withdrawn : Withdrawn.Concat(MpUnreach.Withdrawn);

    /// <summary>True for the End-of-RIB marker (RFC 4724 §2): an empty UPDATE, or an empty MP_UNREACH.</summary>
    public bool IsEndOfRib => Withdrawn.Count == 0 && Nlri.Count == 0 && MpReach is null
        && (MpUnreach is null ? Origin is null && AsPath is null : MpUnreach.Withdrawn.Count == 0);

    internal static BgpDecodeResult DecodeBody(ReadOnlySpan<byte> body, BgpDecodeContext context)
    {
        var withdrawnLength = BinaryPrimitives.ReadUInt16BigEndian(body);
        if (2 + withdrawnLength + 2 > body.Length)
        {
            return Fail(BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList);
        }

        var withdrawn = new List<IPNetwork>();
        if (!Prefixes.TryRead(body.Slice(2, withdrawnLength), ipv6: false, withdrawn))
        {
            return Fail(BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField);
        }

        var attributesLength = BinaryPrimitives.ReadUInt16BigEndian(body[(2 + withdrawnLength)..]);
        var attributesStart = 2 + withdrawnLength + 2;
        if (attributesStart + attributesLength > body.Length)
        {
            return Fail(BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList);
        }

        var nlri = new List<IPNetwork>();
        if (!Prefixes.TryRead(body[(attributesStart + attributesLength)..], ipv6: false, nlri))
        {
            return Fail(BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField);
        }

        var reader = new AttributeReader(context);
        var reset = reader.Read(body.Slice(attributesStart, attributesLength));
        if (reset is not null)
        {
            return new(null, reset);
        }

        var update = new UpdateMessage
        {
            Withdrawn = withdrawn,
            Nlri = nlri,
            Origin = reader.Origin,
            AsPath = reader.AsPath,
            NextHop = reader.NextHop,
            MultiExitDisc = reader.Med,
            LocalPref = reader.LocalPref,
            AtomicAggregate = reader.AtomicAggregate,
            Communities = reader.Communities,
            LargeCommunities = reader.LargeCommunities,
            MpReach = reader.MpReach,
            MpUnreach = reader.MpUnreach,
            OtherAttributes = reader.Others,
        };

        // RFC 7606 §3(d): a missing well-known mandatory attribute is treat-as-withdraw; the data is its type code.
        var error = reader.Error;
        var announces = nlri.Count > 0 || reader.MpReach is { Nlri.Count: > 0 };
        if (announces && error is not { Action: BgpErrorAction.TreatAsWithdraw })
        {
            PathAttributeType? missing = reader.Origin is null ? PathAttributeType.Origin
                : reader.AsPath is null ? PathAttributeType.AsPath
                : nlri.Count > 0 && reader.NextHop is null ? PathAttributeType.NextHop
                : null;
            if (missing is { } type)
            {
                error = BgpError.Withdraw(BgpSubcode.MissingWellKnownAttribute, (byte)type);
            }
        }

        return new(update, error);
    }

    protected override void EncodeBody(BgpWriter writer, BgpDecodeContext context)
    {
        var lengthAt = writer.Length;
        writer.WriteUInt16(0);
        foreach (var prefix in Withdrawn)
        {
            Prefixes.Write(writer, prefix);
        }

        writer.PatchUInt16(lengthAt, checked((ushort)(writer.Length - lengthAt - 2)));

        lengthAt = writer.Length;
        writer.WriteUInt16(0);
        EncodeAttributes(writer, context);
        writer.PatchUInt16(lengthAt, checked((ushort)(writer.Length - lengthAt - 2)));

        foreach (var prefix in Nlri)
        {
            Prefixes.Write(writer, prefix);
        }
    }

    private void EncodeAttributes(BgpWriter writer, BgpDecodeContext context)
    {
        const PathAttributeFlags wellKnown = PathAttributeFlags.Transitive;
        const PathAttributeFlags optionalTransitive = PathAttributeFlags.Optional | PathAttributeFlags.Transitive;
        if (Origin is { } origin)
        {
            var at = Begin(writer, wellKnown, PathAttributeType.Origin);
            writer.WriteByte((byte)origin);
            End(writer, at);
        }

        if (AsPath is { } path)
        {
            var at = Begin(writer, wellKnown, PathAttributeType.AsPath);
            foreach (var segment in path)
            {
                writer.WriteByte((byte)segment.Type);
                writer.WriteByte(checked((byte)segment.Asns.Count));
                foreach (var asn in segment.Asns)
                {
                    if (context.FourOctetAs)
                    {
                        writer.WriteUInt32(asn);
                    }
                    else
                    {
                        writer.WriteUInt16(asn > ushort.MaxValue ? OpenMessage.AsTrans : (ushort)asn);
                    }
                }
            }

            End(writer, at);
        }

        if (NextHop is { } nextHop)
        {
            var at = Begin(writer, wellKnown, PathAttributeType.NextHop);
            Span<byte> bytes = stackalloc byte[4];
            nextHop.TryWriteBytes(bytes, out _);
            writer.Write(bytes);
            End(writer, at);
        }

        if (MultiExitDisc is { } med)
        {
            var at = Begin(writer, PathAttributeFlags.Optional, PathAttributeType.MultiExitDisc);
            writer.WriteUInt32(med);
            End(writer, at);
        }

        if (LocalPref is { } localPref)
        {
            var at = Begin(writer, wellKnown, PathAttributeType.LocalPref);
            writer.WriteUInt32(localPref);
            End(writer, at);
        }

        if (AtomicAggregate)
        {
            End(writer, Begin(writer, wellKnown, PathAttributeType.AtomicAggregate));
        }

        if (Communities.Count > 0)
        {
            var at = Begin(writer, optionalTransitive, PathAttributeType.Communities);
            foreach (var community in Communities)
            {
                writer.WriteUInt32(community.Value);
            }

            End(writer, at);
        }

        if (MpReach is { } reach)
        {
            var at = Begin(writer, PathAttributeFlags.Optional, PathAttributeType.MpReachNlri);
            writer.WriteUInt16(reach.Family.Afi);
            writer.WriteByte(reach.Family.Safi);
            Span<byte> bytes = stackalloc byte[16];
            reach.NextHop.TryWriteBytes(bytes, out var nextHopLength);
            var linkLocalLength = 0;
            Span<byte> linkLocal = stackalloc byte[16];
            if (reach.LinkLocalNextHop is { } ll)
            {
                ll.TryWriteBytes(linkLocal, out linkLocalLength);
            }

            writer.WriteByte((byte)(nextHopLength + linkLocalLength));
            writer.Write(bytes[..nextHopLength]);
            writer.Write(linkLocal[..linkLocalLength]);
            writer.WriteByte(0);
            foreach (var prefix in reach.Nlri)
            {
                Prefixes.Write(writer, prefix);
            }

            End(writer, at);
        }

        if (MpUnreach is { } unreach)
        {
            var at = Begin(writer, PathAttributeFlags.Optional, PathAttributeType.MpUnreachNlri);
            writer.WriteUInt16(unreach.Family.Afi);
            writer.WriteByte(unreach.Family.Safi);
            foreach (var prefix in unreach.Withdrawn)
            {
                Prefixes.Write(writer, prefix);
            }

            End(writer, at);
        }

        if (LargeCommunities.Count > 0)
        {
            var at = Begin(writer, optionalTransitive, PathAttributeType.LargeCommunities);
            foreach (var community in LargeCommunities)
            {
                writer.WriteUInt32(community.GlobalAdministrator);
                writer.WriteUInt32(community.LocalData1);
                writer.WriteUInt32(community.LocalData2);
            }

            End(writer, at);
        }

        foreach (var other in OtherAttributes)
        {
            var at = Begin(writer, other.Flags & ~PathAttributeFlags.ExtendedLength, (PathAttributeType)other.TypeCode);
            writer.Write(other.Value);
            End(writer, at);
        }
    }

    // Attributes are always written with a two-octet (extended) length: simple, and legal for any size.
    private static int Begin(BgpWriter writer, PathAttributeFlags flags, PathAttributeType type)
    {
        writer.WriteByte((byte)(flags | PathAttributeFlags.ExtendedLength));
        writer.WriteByte((byte)type);
        var at = writer.Length;
        writer.WriteUInt16(0);
        return at;
    }

    private static void End(BgpWriter writer, int lengthAt) =>
        writer.PatchUInt16(lengthAt, checked((ushort)(writer.Length - lengthAt - 2)));

    /// <summary>Reads the path attributes, collecting RFC 7606 soft errors; returns a session-reset error.</summary>
    private sealed class AttributeReader(BgpDecodeContext context)
    {
        private readonly bool[] _seen = new bool[256];

        public BgpError? Error { get; private set; }

        public BgpOrigin? Origin { get; private set; }

        public IReadOnlyList<AsPathSegment>? AsPath { get; private set; }

        public IPAddress? NextHop { get; private set; }

        public uint? Med { get; private set; }

        public uint? LocalPref { get; private set; }

        public bool AtomicAggregate { get; private set; }

        public List<Community> Communities { get; } = [];

        public List<LargeCommunity> LargeCommunities { get; } = [];

        public MpReachNlri? MpReach { get; private set; }

        public MpUnreachNlri? MpUnreach { get; private set; }

        public List<RawAttribute> Others { get; } = [];

        public BgpError? Read(ReadOnlySpan<byte> attributes)
        {
            while (!attributes.IsEmpty)
            {
                // RFC 7606 §4: an attribute header or length that overruns the attribute list is a
                // Malformed Attribute List, treat-as-withdraw (the NLRI is still where the lengths say).
                if (attributes.Length < 3)
                {
                    Soft(BgpError.Withdraw(BgpSubcode.MalformedAttributeList));
                    return null;
                }

                var flags = (PathAttributeFlags)attributes[0];
                var type = attributes[1];
                var extended = flags.HasFlag(PathAttributeFlags.ExtendedLength);
                var headerLength = extended ? 4 : 3;
                if (attributes.Length < headerLength)
                {
                    Soft(BgpError.Withdraw(BgpSubcode.MalformedAttributeList));
                    return null;
                }

                int length = extended ? BinaryPrimitives.ReadUInt16BigEndian(attributes[2..]) : attributes[2];
                if (headerLength + length > attributes.Length)
                {
                    Soft(BgpError.Withdraw(BgpSubcode.MalformedAttributeList));
                    return null;
                }

                var whole = attributes[..(headerLength + length)];
                var value = whole[headerLength..];
                attributes = attributes[(headerLength + length)..];

                // RFC 7606 §3(g): repeated MP_REACH/MP_UNREACH reset the session; other repeats are discarded.
                if (_seen[type])
                {
                    if (type is (byte)PathAttributeType.MpReachNlri or (byte)PathAttributeType.MpUnreachNlri)
                    {
                        return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList);
                    }

                    continue;
                }

                _seen[type] = true;
                var reset = ReadOne(flags, type, value, whole);
                if (reset is not null)
                {
                    return reset;
                }
            }

            return null;
        }

        private BgpError? ReadOne(PathAttributeFlags flags, byte type, ReadOnlySpan<byte> value, ReadOnlySpan<byte> whole)
        {
            var expected = ExpectedFlags((PathAttributeType)type);
            if (expected is null)
            {
                // RFC 4271 §6.3: an unrecognized well-known attribute resets the session.
                if (!flags.HasFlag(PathAttributeFlags.Optional))
                {
                    return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.UnrecognizedWellKnownAttribute, whole.ToArray());
                }

                Others.Add(new RawAttribute(flags, type, value.ToArray()));
                return null;
            }

            // RFC 4271 §6.3 / RFC 7606 §3(c): wrong Optional/Transitive bits are an Attribute Flags Error, treat-as-withdraw.
            const PathAttributeFlags checkedBits = PathAttributeFlags.Optional | PathAttributeFlags.Transitive;
            if ((flags & checkedBits) != expected.Value)
            {
                Soft(BgpError.Withdraw(BgpSubcode.AttributeFlagsError, whole.ToArray()));
            }

            switch ((PathAttributeType)type)
            {
                case PathAttributeType.Origin:
                    if (value.Length != 1)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.AttributeLengthError, whole.ToArray()));
                    }
                    else if (value[0] > (byte)BgpOrigin.Incomplete)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.InvalidOriginAttribute, whole.ToArray()));
                    }
                    else
                    {
                        Origin = (BgpOrigin)value[0];
                    }

                    break;
                case PathAttributeType.AsPath:
                    ReadAsPath(value);
                    break;
                case PathAttributeType.NextHop:
                    ReadNextHop(value, whole);
                    break;
                case PathAttributeType.MultiExitDisc:
                    if (value.Length != 4)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.AttributeLengthError, whole.ToArray()));
                    }
                    else
                    {
                        Med = BinaryPrimitives.ReadUInt32BigEndian(value);
                    }

                    break;
                case PathAttributeType.LocalPref:
                    if (value.Length != 4)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.AttributeLengthError, whole.ToArray()));
                    }
                    else
                    {
                        LocalPref = BinaryPrimitives.ReadUInt32BigEndian(value);
                    }

                    break;
                case PathAttributeType.AtomicAggregate:
                    // RFC 7606 §7.6: a bad length is attribute discard.
                    if (value.Length != 0)
                    {
                        Soft(BgpError.Discard(BgpSubcode.AttributeLengthError, whole.ToArray()));
                    }
                    else
                    {
                        AtomicAggregate = true;
                    }

                    break;
                case PathAttributeType.Aggregator:
                    // RFC 7606 §7.7: a bad length is attribute discard.
                    if (value.Length != (context.FourOctetAs ? 8 : 6))
                    {
                        Soft(BgpError.Discard(BgpSubcode.AttributeLengthError, whole.ToArray()));
                    }
                    else
                    {
                        Others.Add(new RawAttribute(flags, type, value.ToArray()));
                    }

                    break;
                case PathAttributeType.Communities:
                    // RFC 7606 §7.8: a length that is not a non-zero multiple of 4 is treat-as-withdraw.
                    if (value.Length == 0 || value.Length % 4 != 0)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.OptionalAttributeError, whole.ToArray()));
                    }
                    else
                    {
                        for (var i = 0; i < value.Length; i += 4)
                        {
                            Communities.Add(new Community(BinaryPrimitives.ReadUInt32BigEndian(value[i..])));
                        }
                    }

                    break;
                case PathAttributeType.LargeCommunities:
                    // RFC 8092 §6: a length that is not a non-zero multiple of 12 is treat-as-withdraw.
                    if (value.Length == 0 || value.Length % 12 != 0)
                    {
                        Soft(BgpError.Withdraw(BgpSubcode.OptionalAttributeError, whole.ToArray()));
                    }
                    else
                    {
                        for (var i = 0; i < value.Length; i += 12)
                        {
                            LargeCommunities.Add(new LargeCommunity(
                                BinaryPrimitives.ReadUInt32BigEndian(value[i..]),
                                BinaryPrimitives.ReadUInt32BigEndian(value[(i + 4)..]),
                                BinaryPrimitives.ReadUInt32BigEndian(value[(i + 8)..])));
                        }
                    }

                    break;
                case PathAttributeType.MpReachNlri:
                    return ReadMpReach(value);
                case PathAttributeType.MpUnreachNlri:
                    return ReadMpUnreach(value);
            }

            return null;
        }

        private void ReadAsPath(ReadOnlySpan<byte> value)
        {
            // RFC 7606 §7.2: a malformed AS_PATH is treat-as-withdraw with subcode Malformed AS_PATH.
            var asSize = context.FourOctetAs ? 4 : 2;
            var segments = new List<AsPathSegment>();
            while (!value.IsEmpty)
            {
                if (value.Length < 2 || value[0] is < 1 or > 4 || value[1] == 0 || value.Length < 2 + (value[1] * asSize))
                {
                    Soft(BgpError.Withdraw(BgpSubcode.MalformedAsPath));
                    return;
                }

                var asns = new uint[value[1]];
                for (var i = 0; i < asns.Length; i++)
                {
                    var at = 2 + (i * asSize);
                    asns[i] = asSize == 4 ? BinaryPrimitives.ReadUInt32BigEndian(value[at..]) : BinaryPrimitives.ReadUInt16BigEndian(value[at..]);
                }

                segments.Add(new AsPathSegment((AsPathSegmentType)value[0], asns));
                value = value[(2 + (asns.Length * asSize))..];
            }

            AsPath = segments;
        }

        private void ReadNextHop(ReadOnlySpan<byte> value, ReadOnlySpan<byte> whole)
        {
            // RFC 7606 §7.3: a bad NEXT_HOP length is treat-as-withdraw.
            if (value.Length != 4)
            {
                Soft(BgpError.Withdraw(BgpSubcode.AttributeLengthError, whole.ToArray()));
                return;
            }

            // RFC 4271 §6.3: a syntactically incorrect next hop (0.0.0.0, multicast, class E) is Invalid NEXT_HOP.
            if (value[0] == 0 || value[0] >= 224)
            {
                Soft(BgpError.Withdraw(BgpSubcode.InvalidNextHopAttribute, whole.ToArray()));
                return;
            }

            NextHop = new IPAddress(value);
        }

        private BgpError? ReadMpReach(ReadOnlySpan<byte> value)
        {
            // RFC 7606 §7.11: an MP_REACH_NLRI whose NLRI cannot be located resets the session.
            if (value.Length < 5 || value.Length < 5 + value[3])
            {
                return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError);
            }

            var family = new AfiSafi(BinaryPrimitives.ReadUInt16BigEndian(value), value[2]);
            var nextHop = value.Slice(4, value[3]);
            var nlriField = value[(5 + value[3])..];
            if (family != AfiSafi.Ipv4Unicast && family != AfiSafi.Ipv6Unicast)
            {
                // RFC 4760 §7: families we did not negotiate are ignored.
                return null;
            }

            var ipv6 = family == AfiSafi.Ipv6Unicast;
            var nlri = new List<IPNetwork>();
            if (!Prefixes.TryRead(nlriField, ipv6, nlri))
            {
                return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField);
            }

            IPAddress address;
            IPAddress? linkLocal = null;
            if (ipv6 && nextHop.Length is 16 or 32)
            {
                address = new IPAddress(nextHop[..16]);
                linkLocal = nextHop.Length == 32 ? new IPAddress(nextHop[16..]) : null;
            }
            else if (!ipv6 && nextHop.Length == 4)
            {
                address = new IPAddress(nextHop);
            }
            else
            {
                // RFC 7606 §7.11: a next hop length that does not fit the family is treat-as-withdraw.
                Soft(BgpError.Withdraw(BgpSubcode.OptionalAttributeError));
                address = ipv6 ? IPAddress.IPv6None : IPAddress.None;
            }

            MpReach = new MpReachNlri(family, address, linkLocal, nlri);
            return null;
        }

        private BgpError? ReadMpUnreach(ReadOnlySpan<byte> value)
        {
            if (value.Length < 3)
            {
                return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.OptionalAttributeError);
            }

            var family = new AfiSafi(BinaryPrimitives.ReadUInt16BigEndian(value), value[2]);
            if (family != AfiSafi.Ipv4Unicast && family != AfiSafi.Ipv6Unicast)
            {
                return null;
            }

            var withdrawn = new List<IPNetwork>();
            if (!Prefixes.TryRead(value[3..], family == AfiSafi.Ipv6Unicast, withdrawn))
            {
                return BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField);
            }

            MpUnreach = new MpUnreachNlri(family, withdrawn);
            return null;
        }

        private void Soft(BgpError error)
        {
            // Treat-as-withdraw outranks attribute discard (RFC 7606 §2); the first of a kind wins.
            if (Error is null || (Error.Action == BgpErrorAction.AttributeDiscard && error.Action == BgpErrorAction.TreatAsWithdraw))
            {
                Error = error;
            }
        }

        private static PathAttributeFlags? ExpectedFlags(PathAttributeType type) => type switch
        {
            PathAttributeType.Origin or PathAttributeType.AsPath or PathAttributeType.NextHop
                or PathAttributeType.LocalPref or PathAttributeType.AtomicAggregate => PathAttributeFlags.Transitive,
            PathAttributeType.MultiExitDisc or PathAttributeType.MpReachNlri or PathAttributeType.MpUnreachNlri => PathAttributeFlags.Optional,
            PathAttributeType.Aggregator or PathAttributeType.Communities or PathAttributeType.LargeCommunities =>
                PathAttributeFlags.Optional | PathAttributeFlags.Transitive,
            _ => null,
        };
    }
}
