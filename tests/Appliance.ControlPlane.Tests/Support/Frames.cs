using System.Buffers.Binary;

namespace Isthmus.ControlPlane.Tests.Support;

public static class Frames
{
    public static readonly byte[] HostA = [0x02, 0, 0, 0, 0, 0x0a];
    public static readonly byte[] HostB = [0x02, 0, 0, 0, 0, 0x0b];

    /// <summary>A 64-byte Ethernet II frame (IPv4 EtherType, zero payload).</summary>
    public static byte[] Ethernet(byte[] destination, byte[] source, ushort etherType = 0x0800, int length = 64)
    {
        var frame = new byte[length];
        destination.CopyTo(frame, 0);
        source.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
        return frame;
    }

    public static byte[] Broadcast => [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
}
