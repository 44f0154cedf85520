using System.Net;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>Path attribute type codes (RFC 4271 §5, RFC 1997, RFC 4760, RFC 8092).</summary>
public enum PathAttributeType : byte
{
    Origin = 1,
    AsPath = 2,
    NextHop = 3,
    MultiExitDisc = 4,
    LocalPref = 5,
    AtomicAggregate = 6,
    Aggregator = 7,
    Communities = 8,
    MpReachNlri = 14,
    MpUnreachNlri = 15,
    LargeCommunities = 32,
}

/// <summary>Attribute flags (RFC 4271 §4.3).</summary>
[Flags]
public enum PathAttributeFlags : byte
{
    None = 0,
    ExtendedLength = 0x10,
    Partial = 0x20,
    Transitive = 0x40,
    Optional = 0x80,
}

/// <summary>ORIGIN values (RFC 4271 §5.1.1).</summary>
public enum BgpOrigin : byte
{
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// <summary>AS_PATH segment types (RFC 4271 §4.3, RFC 5065 for the confederation types).</summary>
public enum AsPathSegmentType : byte
{
    AsSet = 1,
    AsSequence = 2,
    AsConfedSequence = 3,
    AsConfedSet = 4,
}

/// <summary>One AS_PATH segment.</summary>
public sealed record AsPathSegment(AsPathSegmentType Type, IReadOnlyList<uint> Asns)
{
    public bool Equals(AsPathSegment? other) => other is not null && Type == other.Type && Asns.SequenceEqual(other.Asns);

    public override int GetHashCode() => HashCode.Combine(Type, Asns.Count);

    public override string ToString() => Type == AsPathSegmentType.AsSequence
        ? string.Join(' ', Asns)
        : "{" + string.Join(',', Asns) + "}";
}

/// <summary>A standard community (RFC 1997): high 16 bits AS, low 16 bits value.</summary>
public readonly record struct Community(uint Value)
{
    public static readonly Community NoExport = new(0xFFFFFF01);
    public static readonly Community NoAdvertise = new(0xFFFFFF02);

    public Community(ushort asn, ushort value)
        : this(((uint)asn << 16) | value)
    {
    }

    public override string ToString() => $"{Value >> 16}:{Value & 0xffff}";
}

/// <summary>A large community (RFC 8092 §3): global administrator, local data 1, local data 2.</summary>
public readonly record struct LargeCommunity(uint GlobalAdministrator, uint LocalData1, uint LocalData2)
{
    public override string ToString() => $"{GlobalAdministrator}:{LocalData1}:{LocalData2}";
}

/// <summary>An attribute this codec does not interpret, kept as bytes.</summary>
public sealed record RawAttribute(PathAttributeFlags Flags, byte TypeCode, byte[] Value);

/// <summary>MP_REACH_NLRI (RFC 4760 §3): next hop (IPv6: global, optionally link-local) and NLRI.</summary>
public sealed record MpReachNlri(AfiSafi Family, IPAddress NextHop, IPAddress? LinkLocalNextHop, IReadOnlyList<IPNetwork> Nlri);

/// <summary>MP_UNREACH_NLRI (RFC 4760 §4).</summary>
public sealed record MpUnreachNlri(AfiSafi Family, IReadOnlyList<IPNetwork> Withdrawn);
