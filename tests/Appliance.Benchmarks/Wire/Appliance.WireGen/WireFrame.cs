using Isthmus.Packets;

namespace Isthmus.Benchmarks.Wire;

/// <summary>
/// The outer headers of a VXLAN datagram as a hardware VTEP (or a Linux vxlan device) sends it:
/// Ethernet from the VTEP's underlay MAC to the next hop's, IPv4 from the VTEP's address to the remote one,
/// UDP from <paramref name="SourcePort"/> to <paramref name="DestinationPort"/> with checksum 0, VXLAN with the I flag
/// and <paramref name="Vni"/> (RFC 7348 section 5).
/// </summary>
internal readonly record struct VtepSpec(
    MacAddress SourceMac, MacAddress DestinationMac, Ipv4Address SourceIp, Ipv4Address DestinationIp, uint Vni,
    ushort SourcePort, ushort DestinationPort);

/// <summary>The one frame the generator sends, over and over.</summary>
internal static class WireFrame
{
    /// <summary>Room for the largest frame: a 128-byte inner frame plus the 50 bytes of VXLAN encapsulation.</summary>
    public const int MaxLength = 128 + PacketBuilder.VxlanOverhead;

    /// <summary>
    /// Writes the Ethernet/IPv4/UDP frame of <paramref name="frameSize"/> bytes (payload 0x5a), or, with
    /// <paramref name="vtep"/>, that frame as the inner frame of a VXLAN datagram ready for the underlay.
    /// Returns the length written.
    /// </summary>
    public static int Write(Span<byte> buffer, in Ipv4FrameSpec inner, ushort sourcePort, ushort destinationPort, int frameSize, VtepSpec? vtep)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frameSize, 42);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frameSize, 128);
        Span<byte> payload = stackalloc byte[frameSize - 42];
        payload.Fill(0x5a);
        if (vtep is not { } v)
        {
            return PacketBuilder.Udp(buffer, inner, sourcePort, destinationPort, payload);
        }

        // The inner frame is written where the outer headers end, so PacketBuilder.Vxlan's copy is a no-op.
        var innerLength = PacketBuilder.Udp(buffer[PacketBuilder.VxlanOverhead..], inner, sourcePort, destinationPort, payload);
        // A Linux VTEP leaves DF clear (vxlan "df unset", its default) and its UDP checksum at 0 over IPv4.
        var outer = new Ipv4FrameSpec(v.SourceMac, v.DestinationMac, v.SourceIp, v.DestinationIp) { DontFragment = false };
        return PacketBuilder.Vxlan(
            buffer, outer, v.SourcePort, v.Vni, buffer.Slice(PacketBuilder.VxlanOverhead, innerLength), v.DestinationPort, udpChecksum: false);
    }
}
