using System.Buffers.Binary;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// Finishes a partial transport checksum on a frame that arrived without a virtio_net_hdr (AF_XDP). A veth
/// peer with TX checksum offload on (CHECKSUM_PARTIAL) hands over TCP/UDP frames whose checksum field holds
/// only the folded pseudo-header sum, uncomplemented, as tcp_v4_send_check/udp4_hwcsum leave it for the
/// device to finish: the AF_PACKET path learns that from NEEDS_CSUM, an XDP frame carries no such flag.
/// </summary>
/// <remarks>
/// <para>Detection costs one pseudo-header sum (IPv4: 8 address bytes; IPv6: 32) and a compare per TCP/UDP
/// frame; the payload is summed only when the field equals the folded pseudo-header sum. Finishing is then
/// the device's job: the Internet checksum over the transport header and payload (up to the IP length, not
/// the frame's: short frames are padded) with the field as it stands, complemented into the field.</para>
/// <para>Idempotent on a correct frame: if a full checksum happens to equal its folded pseudo-header sum
/// (1 in 65536), finishing writes the same value back. Only a corrupt frame whose wrong checksum has that
/// value too would be "repaired". Fragments, IPv6 extension headers, IPv4 UDP without a checksum (0) and
/// anything unparsable are left as they are.</para>
/// </remarks>
internal static unsafe class XdpChecksum
{
    /// <summary>True when the frame's TCP/UDP checksum was partial and is now finished in place.</summary>
    public static bool FinishIfPartial(byte* frame, int length)
    {
        var l3 = VirtioNet.L3Offset(frame, length, out var etherType);
        if (l3 < 0)
        {
            return false;
        }

        int l4, end;
        byte protocol;
        ulong pseudo;
        var ip = frame + l3;
        if (etherType == 0x0800)
        {
            if (l3 + 20 > length || (ip[0] >> 4) != 4)
            {
                return false;
            }

            var ihl = (ip[0] & 0xF) * 4;
            var total = (ip[2] << 8) | ip[3];
            if (ihl < 20 || total < ihl || l3 + total > length || (((ip[6] << 8) | ip[7]) & 0x3FFF) != 0)
            {
                return false;
            }

            protocol = ip[9];
            l4 = l3 + ihl;
            end = l3 + total;
            pseudo = Checksum.Add(new ReadOnlySpan<byte>(ip + 12, 8));
        }
        else if (etherType == 0x86DD)
        {
            if (l3 + 40 > length || (ip[0] >> 4) != 6)
            {
                return false;
            }

            protocol = ip[6];
            l4 = l3 + 40;
            end = l4 + ((ip[4] << 8) | ip[5]);
            if (end > length)
            {
                return false;
            }

            pseudo = Checksum.Add(new ReadOnlySpan<byte>(ip + 8, 32));
        }
        else
        {
            return false;
        }

        int offset;
        if (protocol == IpProtocol.Tcp)
        {
            offset = 16;
            if (l4 + 20 > end)
            {
                return false;
            }
        }
        else if (protocol == IpProtocol.Udp)
        {
            offset = 6;
            if (l4 + 8 > end)
            {
                return false;
            }
        }
        else
        {
            return false;
        }

        var field = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(frame + l4 + offset, 2));
        if (field == 0 && protocol == IpProtocol.Udp && etherType == 0x0800)
        {
            return false;
        }

        var folded = Checksum.Fold(pseudo + protocol + (ulong)(end - l4));
        if (field != folded && !(field == 0 && folded == 0xFFFF))
        {
            return false;
        }

        return VirtioNet.FinishChecksum(frame, end, l4, offset);
    }
}
