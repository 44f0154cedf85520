// ICMP (RFC 792) and ICMPv6 (RFC 4443 section 2.1) share the first four octets:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     Type      |     Code      |          Checksum             |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   Rest of header: Identifier + Sequence (echo), MTU (packet   |
//  |   too big), Pointer (parameter problem), unused (errors)      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   Body: echo data, or for errors the invoking packet ("as     |
//  |   much as fits", RFC 4443 section 3; IP header + 64 bits, RFC 792)
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The ICMPv4 checksum covers the ICMP message only (RFC 792). The ICMPv6 checksum also covers the
// IPv6 pseudo-header (RFC 4443 section 2.3, RFC 8200 section 8.1).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>ICMPv4 message types (RFC 792).</summary>
public static class Icmpv4Type
{
    public const byte EchoReply = 0;
    public const byte DestinationUnreachable = 3;
    public const byte SourceQuench = 4;
    public const byte Redirect = 5;
    public const byte EchoRequest = 8;
    public const byte TimeExceeded = 11;
    public const byte ParameterProblem = 12;
}

/// <summary>ICMPv6 message types (RFC 4443, RFC 4861).</summary>
public static class Icmpv6Type
{
    public const byte DestinationUnreachable = 1;
    public const byte PacketTooBig = 2;
    public const byte TimeExceeded = 3;
    public const byte ParameterProblem = 4;
    public const byte EchoRequest = 128;
    public const byte EchoReply = 129;
    public const byte RouterSolicitation = 133;
    public const byte RouterAdvertisement = 134;
    public const byte NeighborSolicitation = 135;
    public const byte NeighborAdvertisement = 136;
}

/// <summary>View over an ICMPv4 message (the whole IPv4 payload).</summary>
public readonly ref struct Icmpv4Header
{
    /// <summary>Type, code, checksum and the 4-octet rest of header.</summary>
    public const int Length = 8;

    /// <summary>Where the invoking packet starts in an error message.</summary>
    public const int QuotedPacketOffset = 8;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Icmpv4Header(Span<byte> message) => _bytes = message;

    public static ParseError TryParse(Span<byte> ipPayload, out Icmpv4Header header)
    {
        header = default;
        if (ipPayload.Length < Length)
        {
            return ParseError.Truncated;
        }

        header = new Icmpv4Header(ipPayload);
        return ParseError.None;
    }

    public byte Type
    {
        get => _bytes[0];
        set => _bytes[0] = value;
    }

    public byte Code
    {
        get => _bytes[1];
        set => _bytes[1] = value;
    }

    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[2..], value);
    }

    /// <summary>Echo identifier (RFC 792, echo and echo reply).</summary>
    public ushort Identifier
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[4..], value);
    }

    public ushort SequenceNumber
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[6..], value);
    }

    public bool IsEcho => _bytes[0] is Icmpv4Type.EchoRequest or Icmpv4Type.EchoReply;

    /// <summary>Error messages quote the invoking packet: unreachable, quench, redirect, time exceeded, parameter problem.</summary>
    public bool IsError => _bytes[0] is Icmpv4Type.DestinationUnreachable or Icmpv4Type.SourceQuench or Icmpv4Type.Redirect
        or Icmpv4Type.TimeExceeded or Icmpv4Type.ParameterProblem;

    /// <summary>The invoking packet's IP header and leading payload for errors; empty otherwise.</summary>
    public Span<byte> QuotedPacket => IsError ? _bytes[QuotedPacketOffset..] : [];

    public Span<byte> Message => _bytes;

    public Span<byte> Body => _bytes[Length..];

    public ushort ComputeChecksum() => Packets.Checksum.Finish(Packets.Checksum.Add(_bytes[4..], Packets.Checksum.Add(_bytes[..2])));

    public bool IsChecksumValid => Packets.Checksum.IsValid(_bytes);

    public void UpdateChecksum() => Checksum = ComputeChecksum();

    /// <summary>Writes type, code, zero checksum and the rest-of-header word; returns <see cref="Length"/>.</summary>
    public static int Write(Span<byte> destination, byte type, byte code, uint restOfHeader)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], restOfHeader);
        destination[0] = type;
        destination[1] = code;
        destination[2] = 0;
        destination[3] = 0;
        return Length;
    }
}

/// <summary>View over an ICMPv6 message (the upper-layer data after the IPv6 extension headers).</summary>
public readonly ref struct Icmpv6Header
{
    /// <summary>Every message RFC 4443 and RFC 4861 define has at least 8 octets.</summary>
    public const int Length = 8;

    public const int QuotedPacketOffset = 8;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Icmpv6Header(Span<byte> message) => _bytes = message;

    public static ParseError TryParse(Span<byte> upperLayer, out Icmpv6Header header)
    {
        header = default;
        if (upperLayer.Length < Length)
        {
            return ParseError.Truncated;
        }

        header = new Icmpv6Header(upperLayer);
        return ParseError.None;
    }

    public byte Type
    {
        get => _bytes[0];
        set => _bytes[0] = value;
    }

    public byte Code
    {
        get => _bytes[1];
        set => _bytes[1] = value;
    }

    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[2..], value);
    }

    public ushort Identifier
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[4..], value);
    }

    public ushort SequenceNumber
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[6..], value);
    }

    /// <summary>Packet Too Big MTU (RFC 4443 section 3.2) or Parameter Problem pointer (section 3.4).</summary>
    public uint MtuOrPointer
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[4..], value);
    }

    /// <summary>Types 0-127 are errors (RFC 4443 section 2.1).</summary>
    public bool IsError => _bytes[0] < 128;

    public bool IsEcho => _bytes[0] is Icmpv6Type.EchoRequest or Icmpv6Type.EchoReply;

    public Span<byte> QuotedPacket => IsError ? _bytes[QuotedPacketOffset..] : [];

    public Span<byte> Message => _bytes;

    public Span<byte> Body => _bytes[Length..];

    /// <summary>The checksum over the pseudo-header and the message (checksum field taken as zero).</summary>
    public ushort ComputeChecksum(in Ipv6Address source, in Ipv6Address destination)
    {
        ulong sum = Packets.Checksum.PseudoHeaderSum(source, destination, IpProtocol.Icmpv6, (uint)_bytes.Length);
        sum = Packets.Checksum.Add(_bytes[..2], sum);
        return Packets.Checksum.Finish(Packets.Checksum.Add(_bytes[4..], sum));
    }

    public bool IsChecksumValid(in Ipv6Address source, in Ipv6Address destination) =>
        Packets.Checksum.IsValid(_bytes, Packets.Checksum.PseudoHeaderSum(source, destination, IpProtocol.Icmpv6, (uint)_bytes.Length));

    public void UpdateChecksum(in Ipv6Address source, in Ipv6Address destination) => Checksum = ComputeChecksum(source, destination);

    public static int Write(Span<byte> destination, byte type, byte code, uint restOfHeader) =>
        Icmpv4Header.Write(destination, type, code, restOfHeader);
}
