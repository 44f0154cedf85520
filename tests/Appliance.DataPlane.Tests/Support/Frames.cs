using System.Buffers.Binary;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Support;

/// <summary>Builds the frames the data-plane tests speak in: Ethernet, tagged, and VXLAN payloads.</summary>
public static class Frames
{
    public static readonly MacAddress Broadcast = MacAddress.Broadcast;

    public static MacAddress Mac(string text) => MacAddress.Parse(text);

    /// <summary>An Ethernet frame with an IPv4-ish payload of <paramref name="payload"/> bytes (minimum frame 60).</summary>
    public static byte[] Ethernet(MacAddress destination, MacAddress source, int payload = 46, ushort etherType = EtherType.Ipv4)
    {
        var frame = new byte[EthernetHeader.Length + Math.Max(payload, 0)];
        EthernetHeader.Write(frame, destination, source, etherType);
        for (var i = EthernetHeader.Length; i < frame.Length; i++)
        {
            frame[i] = (byte)i;
        }

        return frame;
    }

    /// <summary>The same frame with an inline 802.1Q tag.</summary>
    public static byte[] Tagged(byte[] frame, ushort vlan, ushort tpid = EtherType.Vlan)
    {
        var tagged = new byte[frame.Length + 4];
        frame.AsSpan(0, 12).CopyTo(tagged);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(12), tpid);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(14), vlan);
        frame.AsSpan(12).CopyTo(tagged.AsSpan(16));
        return tagged;
    }

    /// <summary>A UDP payload as a VXLAN port receives it: the 8-byte VXLAN header and the inner frame.</summary>
    public static byte[] Vxlan(uint vni, byte[] inner, byte flags = VxlanHeader.FlagI)
    {
        var payload = new byte[VxlanHeader.Length + inner.Length];
        VxlanHeader.Write(payload, vni);
        payload[0] = flags;
        inner.CopyTo(payload, VxlanHeader.Length);
        return payload;
    }

    public static uint Ip(string text) => Ipv4Address.Parse(text).Value;

    /// <summary>Removes an inline outer tag and returns (vlan, frame).</summary>
    public static (ushort Vlan, byte[] Frame) Untag(byte[] tagged)
    {
        Assert.Equal(EtherType.Vlan, BinaryPrimitives.ReadUInt16BigEndian(tagged.AsSpan(12)));
        var vlan = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(tagged.AsSpan(14)) & 0x0FFF);
        var frame = new byte[tagged.Length - 4];
        tagged.AsSpan(0, 12).CopyTo(frame);
        tagged.AsSpan(16).CopyTo(frame.AsSpan(12));
        return (vlan, frame);
    }

    /// <summary>Splits a transmitted VXLAN payload into (vni, inner frame).</summary>
    public static (uint Vni, byte[] Inner) Unvxlan(byte[] payload)
    {
        Assert.Equal(ParseError.None, VxlanHeader.TryParse(payload, out var header));
        return (header.Vni, payload[VxlanHeader.Length..]);
    }
}
