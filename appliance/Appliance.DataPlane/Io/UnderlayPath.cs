using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Io;

/// <summary>How the kernel reaches one remote VTEP, as far as a raw sender needs it.</summary>
public enum UnderlayState : byte
{
    /// <summary>No usable route or neighbor yet: send through the UDP socket (which also makes the kernel ARP).</summary>
    Unresolved,

    /// <summary>The next hop's MAC is known and confirmed (REACHABLE, PERMANENT, NOARP).</summary>
    Resolved,

    /// <summary>
    /// The MAC is known but the kernel wants it confirmed (STALE, DELAY, PROBE): usable, and one datagram
    /// per refresh goes through the UDP socket so the kernel's neighbor machinery re-validates it.
    /// </summary>
    Stale,

    /// <summary>
    /// Not a unicast route with one egress Ethernet interface (a local address, loopback, a multipath route):
    /// always the UDP socket.
    /// </summary>
    KernelOnly,
}

/// <summary>
/// The outer headers toward one remote VTEP, resolved from the kernel's routing and neighbor tables:
/// egress interface, next-hop MAC, addresses. <see cref="Write"/> prepends them to a VXLAN payload.
/// </summary>
/// <remarks>
/// <code>
///  Ethernet (14)  dst = next hop, src = egress interface, type 0x0800
///  IPv4 (20)      RFC 791: version 4, IHL 5, TOS 0, ID 0 + DF (RFC 6864 §4.1: ID is unused on atomic
///                 datagrams), TTL 64, protocol 17, header checksum, src, dst
///  UDP (8)        RFC 768; RFC 7348 §5: source port = hash of the inner frame (49152-65535), destination
///                 port 4789 by default, checksum 0 (allowed for VXLAN over IPv4)
/// </code>
/// The IPv4 checksum is the template's one's-complement sum (computed once, total length 0) plus the
/// datagram's total length: one add and a fold per packet (RFC 1071).
/// </remarks>
public readonly record struct UnderlayPath(
    UnderlayState State,
    int InterfaceIndex,
    int Mtu,
    ulong SourceMac,
    ulong NextHopMac,
    uint SourceIp,
    uint DestinationIp)
{
    /// <summary>Ethernet + IPv4 + UDP: what <see cref="Write"/> puts in front of the VXLAN header.</summary>
    public const int OuterLength = EthernetHeader.Length + 20 + 8;

    public static UnderlayPath Unresolved(uint destinationIp) => new(UnderlayState.Unresolved, 0, 0, 0, 0, 0, destinationIp);

    /// <summary>Raw frames may go out on this path.</summary>
    public bool Usable => State is UnderlayState.Resolved or UnderlayState.Stale;

    /// <summary>
    /// One's-complement sum (folded to 16 bits) of this path's IPv4 header with total length and checksum 0.
    /// </summary>
    public uint HeaderSum
    {
        get
        {
            // 0x4500 (version, IHL, TOS) + 0x4000 (DF) + 0x4011 (TTL 64, UDP) + addresses.
            var sum = 0x4500u + 0x4000u + 0x4011u
                + (SourceIp >> 16) + (SourceIp & 0xFFFF) + (DestinationIp >> 16) + (DestinationIp & 0xFFFF);
            return Fold(sum);
        }
    }

    /// <summary>
    /// Writes the outer Ethernet/IPv4/UDP headers into the <see cref="OuterLength"/> bytes of
    /// <paramref name="outer"/>, in front of a <paramref name="payloadLength"/>-byte VXLAN payload (VXLAN
    /// header + inner frame). <paramref name="headerSum"/> is <see cref="HeaderSum"/> (cached by the caller).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(Span<byte> outer, int payloadLength, ushort sourcePort, ushort destinationPort, uint headerSum)
    {
        if (outer.Length < OuterLength)
        {
            throw new ArgumentException("The outer header needs 42 bytes.", nameof(outer));
        }

        new MacAddress(NextHopMac).WriteTo(outer);
        new MacAddress(SourceMac).WriteTo(outer[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(outer[12..], EtherType.Ipv4);
        var ip = outer[EthernetHeader.Length..];
        var totalLength = (uint)(20 + 8 + payloadLength);
        BinaryPrimitives.WriteUInt32BigEndian(ip, 0x4500_0000u | totalLength);
        BinaryPrimitives.WriteUInt32BigEndian(ip[4..], 0x0000_4000u);
        BinaryPrimitives.WriteUInt32BigEndian(ip[8..], 0x4011_0000u | (~Fold(headerSum + totalLength) & 0xFFFF));
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], SourceIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], DestinationIp);
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt32BigEndian(udp, ((uint)sourcePort << 16) | destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(udp[4..], (8u + (uint)payloadLength) << 16);
    }

    private static uint Fold(uint sum)
    {
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (sum & 0xFFFF) + (sum >> 16);
    }
}
