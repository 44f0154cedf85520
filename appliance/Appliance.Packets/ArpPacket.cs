// ARP packet for Ethernet and IPv4, RFC 826 ("Packet format"); RARP (RFC 903) uses the same layout
// with EtherType 0x8035 and opcodes 3 and 4:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     Hardware Type (1)         |     Protocol Type (0x0800)    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  HLEN (6)     |   PLEN (4)    |            Opcode             |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                 Sender Hardware Address (6)                   |
//  +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                               |  Sender Protocol Address (4)  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//  |                               |                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//  |                 Target Hardware Address (6)                   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                 Target Protocol Address (4)                   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>ARP (RFC 826) and RARP (RFC 903) opcodes.</summary>
public enum ArpOpcode : ushort
{
    Request = 1,
    Reply = 2,
    RarpRequest = 3,
    RarpReply = 4,
}

/// <summary>View over an Ethernet/IPv4 ARP or RARP packet (the Ethernet payload).</summary>
public readonly ref struct ArpPacket
{
    public const int Length = 28;
    public const ushort HardwareTypeEthernet = 1;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ArpPacket(Span<byte> bytes) => _bytes = bytes;

    /// <summary>
    /// Accepts only hardware type 1 with 6-byte addresses and protocol 0x0800 with 4-byte addresses
    /// (<see cref="ParseError.UnsupportedArpFormat"/> otherwise). The opcode is not checked; see <see cref="Opcode"/>.
    /// </summary>
    public static ParseError TryParse(Span<byte> ethernetPayload, out ArpPacket packet)
    {
        packet = default;
        if (ethernetPayload.Length < Length)
        {
            return ParseError.Truncated;
        }

        // htype 0001, ptype 0800, hlen 06, plen 04 as one big-endian 48-bit compare.
        if (BinaryPrimitives.ReadUInt32BigEndian(ethernetPayload) != 0x0001_0800u
            || BinaryPrimitives.ReadUInt16BigEndian(ethernetPayload[4..]) != 0x0604)
        {
            return ParseError.UnsupportedArpFormat;
        }

        packet = new ArpPacket(ethernetPayload);
        return ParseError.None;
    }

    public ushort HardwareType => BinaryPrimitives.ReadUInt16BigEndian(_bytes);

    public ushort ProtocolType => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    public ArpOpcode Opcode
    {
        get => (ArpOpcode)BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[6..], (ushort)value);
    }

    public MacAddress SenderMac
    {
        get => MacAddress.Read(_bytes[8..]);
        set => value.WriteTo(_bytes[8..]);
    }

    public Ipv4Address SenderIp
    {
        get => Ipv4Address.Read(_bytes[14..]);
        set => value.WriteTo(_bytes[14..]);
    }

    public MacAddress TargetMac
    {
        get => MacAddress.Read(_bytes[18..]);
        set => value.WriteTo(_bytes[18..]);
    }

    public Ipv4Address TargetIp
    {
        get => Ipv4Address.Read(_bytes[24..]);
        set => value.WriteTo(_bytes[24..]);
    }

    /// <summary>
    /// A gratuitous ARP (request or reply) or ARP announcement: sender IP equals target IP
    /// (RFC 5227 section 3, RFC 5944 section 4.6).
    /// </summary>
    public bool IsGratuitous => (Opcode == ArpOpcode.Request || Opcode == ArpOpcode.Reply) && SenderIp == TargetIp;

    /// <summary>An ARP probe (RFC 5227 section 2.1.1): a request with sender IP 0.0.0.0.</summary>
    public bool IsProbe => Opcode == ArpOpcode.Request && SenderIp.IsAny;

    /// <summary>Writes the 28-byte ARP body; returns <see cref="Length"/>.</summary>
    public static int Write(Span<byte> destination, ArpOpcode opcode, MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp)
    {
        var body = destination[..Length];
        BinaryPrimitives.WriteUInt32BigEndian(body, 0x0001_0800u);
        BinaryPrimitives.WriteUInt16BigEndian(body[4..], 0x0604);
        BinaryPrimitives.WriteUInt16BigEndian(body[6..], (ushort)opcode);
        senderMac.WriteTo(body[8..]);
        senderIp.WriteTo(body[14..]);
        targetMac.WriteTo(body[18..]);
        targetIp.WriteTo(body[24..]);
        return Length;
    }
}
