using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// Virtual reassembly (VPP's "shallow reassembly", RFC 1858's concerns): IPv4 fragments after the
/// first carry no transport header, so conntrack cannot find their flow by ports. When the first
/// fragment of a datagram (offset 0, more fragments) passes conntrack, its ports are remembered
/// under (source, destination, protocol, identification); later fragments of the same datagram
/// recall them, find the same session and get the same verdict and the same address translation.
/// Nothing is buffered or reassembled: fragments leave as they came.
/// </summary>
/// <remarks>
/// Direct-mapped, 4096 entries of 20 bytes per worker, a 30 s lifetime (Linux's ipfrag_time). A
/// collision overwrites the older datagram: its remaining fragments are dropped and counted
/// (<c>conntrack.FragmentNoFlow</c>), as are fragments that arrive before their first one.
/// </remarks>
public sealed class FragmentCache
{
    public const int Capacity = 4096;
    public const uint LifetimeSeconds = 30;

    private readonly Entry[] _entries = new Entry[Capacity];

    /// <summary>Remembers a first fragment's ports (as it arrived, before any translation).</summary>
    public void Remember(uint source, uint destination, byte protocol, ushort id, ushort sourcePort, ushort destinationPort, uint now)
    {
        ref var e = ref _entries[Slot(source, destination, protocol, id)];
        e.Source = source;
        e.Destination = destination;
        e.Protocol = protocol;
        e.Id = id;
        e.SourcePort = sourcePort;
        e.DestinationPort = destinationPort;
        e.Expires = now + LifetimeSeconds;
    }

    /// <summary>The ports of the datagram a later fragment belongs to, if its first fragment was seen.</summary>
    public bool TryRecall(uint source, uint destination, byte protocol, ushort id, uint now, out ushort sourcePort, out ushort destinationPort)
    {
        ref readonly var e = ref _entries[Slot(source, destination, protocol, id)];
        if (e.Expires > now && e.Source == source && e.Destination == destination && e.Protocol == protocol && e.Id == id)
        {
            sourcePort = e.SourcePort;
            destinationPort = e.DestinationPort;
            return true;
        }

        sourcePort = 0;
        destinationPort = 0;
        return false;
    }

    private static int Slot(uint source, uint destination, byte protocol, ushort id)
    {
        var h = (((ulong)source << 32) | destination) * 0x9E37_79B9_7F4A_7C15UL;
        h ^= ((ulong)id << 8 | protocol) * 0xC2B2_AE3D_27D4_EB4FUL;
        return (int)(h >> 52) & (Capacity - 1);
    }

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct Entry
    {
        public uint Source;
        public uint Destination;
        public uint Expires;
        public ushort Id;
        public ushort SourcePort;
        public ushort DestinationPort;
        public byte Protocol;
    }
}
