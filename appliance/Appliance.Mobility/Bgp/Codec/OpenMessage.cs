using System.Buffers.Binary;
using System.Net;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>An address family and subsequent address family (RFC 4760 §3, IANA registries).</summary>
public readonly record struct AfiSafi(ushort Afi, byte Safi)
{
    public const ushort AfiIpv4 = 1;
    public const ushort AfiIpv6 = 2;
    public const byte SafiUnicast = 1;

    public static AfiSafi Ipv4Unicast => new(AfiIpv4, SafiUnicast);

    public static AfiSafi Ipv6Unicast => new(AfiIpv6, SafiUnicast);

    public override string ToString() => $"{Afi}/{Safi}";
}

/// <summary>Capability codes (RFC 5492 §4, IANA).</summary>
public enum CapabilityCode : byte
{
    Multiprotocol = 1,
    RouteRefresh = 2,
    FourOctetAs = 65,
}

/// <summary>A capability we do not interpret, kept as bytes.</summary>
public readonly record struct RawCapability(byte Code, byte[] Value);

/// <summary>
/// OPEN (RFC 4271 §4.2) with the Capabilities optional parameter (RFC 5492): multiprotocol (RFC 4760),
/// route refresh (RFC 2918) and 4-octet AS numbers (RFC 6793).
/// </summary>
public sealed record OpenMessage : BgpMessage
{
    public const int MinLength = HeaderLength + 10;

    /// <summary>AS_TRANS (RFC 6793 §9): the 2-octet My AS when the real ASN does not fit.</summary>
    public const ushort AsTrans = 23456;

    private const byte CapabilitiesParameter = 2;

    public byte Version { get; init; } = 4;

    /// <summary>The speaker's real AS: the 4-octet AS capability's value when present, else My AS.</summary>
    public required uint As { get; init; }

    public required ushort HoldTime { get; init; }

    public required IPAddress BgpIdentifier { get; init; }

    public IReadOnlyList<AfiSafi> Multiprotocol { get; init; } = [];

    public bool RouteRefresh { get; init; }

    public bool FourOctetAs { get; init; }

    public IReadOnlyList<RawCapability> OtherCapabilities { get; init; } = [];

    public override BgpMessageType Type => BgpMessageType.Open;

    /// <summary>The families both sides can use: without MP capabilities, IPv4 unicast only (RFC 4760 §8).</summary>
    public IReadOnlyList<AfiSafi> Families => Multiprotocol.Count == 0 ? [AfiSafi.Ipv4Unicast] : Multiprotocol;

    internal static BgpDecodeResult DecodeBody(ReadOnlySpan<byte> body)
    {
        var version = body[0];
        if (version != 4)
        {
            // RFC 4271 §6.2: data is the largest locally supported version.
            return Fail(BgpErrorCode.OpenMessage, BgpSubcode.UnsupportedVersionNumber, 0, 4);
        }

        uint myAs = BinaryPrimitives.ReadUInt16BigEndian(body[1..]);
        var holdTime = BinaryPrimitives.ReadUInt16BigEndian(body[3..]);
        var identifier = body.Slice(5, 4);
        var parametersLength = body[9];
        var parameters = body[10..];
        if (parametersLength != parameters.Length)
        {
            return Fail(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, BigEndian16(body.Length + HeaderLength));
        }

        // RFC 4271 §6.2: a hold time of one or two seconds is unacceptable.
        if (holdTime is 1 or 2)
        {
            return Fail(BgpErrorCode.OpenMessage, BgpSubcode.UnacceptableHoldTime);
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(identifier) == 0)
        {
            return Fail(BgpErrorCode.OpenMessage, BgpSubcode.BadBgpIdentifier);
        }

        var families = new List<AfiSafi>();
        var others = new List<RawCapability>();
        var routeRefresh = false;
        uint? as4 = null;
        while (!parameters.IsEmpty)
        {
            if (parameters.Length < 2 || parameters[1] + 2 > parameters.Length)
            {
                return Fail(BgpErrorCode.OpenMessage, BgpSubcode.Unspecific);
            }

            var parameterType = parameters[0];
            var value = parameters.Slice(2, parameters[1]);
            parameters = parameters[(2 + parameters[1])..];
            if (parameterType != CapabilitiesParameter)
            {
                return Fail(BgpErrorCode.OpenMessage, BgpSubcode.UnsupportedOptionalParameter);
            }

            while (!value.IsEmpty)
            {
                if (value.Length < 2 || value[1] + 2 > value.Length)
                {
                    return Fail(BgpErrorCode.OpenMessage, BgpSubcode.Unspecific);
                }

                var code = value[0];
                var capability = value.Slice(2, value[1]);
                value = value[(2 + value[1])..];
                switch ((CapabilityCode)code)
                {
                    case CapabilityCode.Multiprotocol when capability.Length == 4:
                        families.Add(new AfiSafi(BinaryPrimitives.ReadUInt16BigEndian(capability), capability[3]));
                        break;
                    case CapabilityCode.RouteRefresh when capability.Length == 0:
                        routeRefresh = true;
                        break;
                    case CapabilityCode.FourOctetAs when capability.Length == 4:
                        as4 = BinaryPrimitives.ReadUInt32BigEndian(capability);
                        break;
                    case CapabilityCode.Multiprotocol or CapabilityCode.RouteRefresh or CapabilityCode.FourOctetAs:
                        return Fail(BgpErrorCode.OpenMessage, BgpSubcode.Unspecific);
                    default:
                        others.Add(new RawCapability(code, capability.ToArray()));
                        break;
                }
            }
        }

        // RFC 6793 §4.1: a 4-octet AS of zero is a Bad Peer AS; so is My AS zero.
        if (as4 == 0 || myAs == 0)
        {
            return Fail(BgpErrorCode.OpenMessage, BgpSubcode.BadPeerAs);
        }

        return new(
            new OpenMessage
            {
                Version = version,
                As = as4 ?? myAs,
                HoldTime = holdTime,
                BgpIdentifier = new IPAddress(identifier),
                Multiprotocol = families,
                RouteRefresh = routeRefresh,
                FourOctetAs = as4 is not null,
                OtherCapabilities = others,
            },
            null);
    }

    protected override void EncodeBody(BgpWriter writer, BgpDecodeContext context)
    {
        writer.WriteByte(Version);
        writer.WriteUInt16(As > ushort.MaxValue ? AsTrans : (ushort)As);
        writer.WriteUInt16(HoldTime);
        Span<byte> id = stackalloc byte[4];
        BgpIdentifier.TryWriteBytes(id, out _);
        writer.Write(id);
        var parametersLengthAt = writer.Length;
        writer.WriteByte(0);
        if (Multiprotocol.Count == 0 && !RouteRefresh && !FourOctetAs && OtherCapabilities.Count == 0)
        {
            return;
        }

        var parametersStart = writer.Length;
        writer.WriteByte(CapabilitiesParameter);
        var capabilitiesLengthAt = writer.Length;
        writer.WriteByte(0);
        foreach (var family in Multiprotocol)
        {
            writer.WriteByte((byte)CapabilityCode.Multiprotocol);
            writer.WriteByte(4);
            writer.WriteUInt16(family.Afi);
            writer.WriteByte(0);
            writer.WriteByte(family.Safi);
        }

        if (RouteRefresh)
        {
            writer.WriteByte((byte)CapabilityCode.RouteRefresh);
            writer.WriteByte(0);
        }

        if (FourOctetAs)
        {
            writer.WriteByte((byte)CapabilityCode.FourOctetAs);
            writer.WriteByte(4);
            writer.WriteUInt32(As);
        }

        foreach (var other in OtherCapabilities)
        {
            writer.WriteByte(other.Code);
            writer.WriteByte((byte)other.Value.Length);
            writer.Write(other.Value);
        }

        var capabilitiesLength = writer.Length - capabilitiesLengthAt - 1;
        writer.PatchByte(capabilitiesLengthAt, checked((byte)capabilitiesLength));
        writer.PatchByte(parametersLengthAt, checked((byte)(writer.Length - parametersStart)));
    }

    public bool Equals(OpenMessage? other) =>
        other is not null && Version == other.Version && As == other.As && HoldTime == other.HoldTime
        && BgpIdentifier.Equals(other.BgpIdentifier) && Multiprotocol.SequenceEqual(other.Multiprotocol)
        && RouteRefresh == other.RouteRefresh && FourOctetAs == other.FourOctetAs
        && OtherCapabilities.Count == other.OtherCapabilities.Count;

    public override int GetHashCode() => HashCode.Combine(As, HoldTime, BgpIdentifier);
}
