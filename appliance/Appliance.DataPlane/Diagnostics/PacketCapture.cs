using System.Buffers.Binary;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Diagnostics;

/// <summary>Which received frames a capture keeps (fields left null match anything).</summary>
public sealed record CaptureFilter
{
    /// <summary>Index of the ingress port in the worker's port table.</summary>
    public int? Port { get; init; }

    /// <summary>802.1Q VLAN id (from PACKET_AUXDATA or an inline tag).</summary>
    public ushort? Vlan { get; init; }

    /// <summary>VNI, for frames received on the VXLAN port.</summary>
    public int? Vni { get; init; }

    /// <summary>Matches the source or the destination MAC.</summary>
    public MacAddress? Mac { get; init; }

    /// <summary>EtherType after any VLAN tags (0x0800 IPv4, 0x0806 ARP, 0x86DD IPv6).</summary>
    public ushort? EtherType { get; init; }
}

/// <summary>One captured frame as it was received: an Ethernet frame with its 802.1Q tag inline.</summary>
/// <param name="Timestamp">The worker's clock (<see cref="TimeProvider.GetTimestamp"/>) for the batch.</param>
public sealed record CapturedFrame(long Timestamp, int Port, byte[] Bytes);

/// <summary>
/// Packet capture at receive (what tcpdump on a pfSense interface shows): frames matching a filter are
/// copied out until a count is reached. The worker pays one volatile read per batch when no capture is
/// armed; copying and allocating happen only for an armed capture, which is diagnostic.
/// </summary>
/// <remarks>
/// Threading: <see cref="Arm"/> and <see cref="CaptureSession.Stop"/> run on API threads;
/// <see cref="Offer"/> only on the worker thread. One capture at a time.
/// </remarks>
public sealed class PacketCapture
{
    private CaptureSession? _session;

    /// <summary>The one check the worker makes per batch.</summary>
    public bool Armed => Volatile.Read(ref _session) is not null;

    /// <summary>Starts a capture of up to <paramref name="count"/> frames; null when one is already running.</summary>
    public CaptureSession? Arm(CaptureFilter filter, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var session = new CaptureSession(this, filter, count);
        return Interlocked.CompareExchange(ref _session, session, null) is null ? session : null;
    }

    internal void Release(CaptureSession session) => Interlocked.CompareExchange(ref _session, null, session);

    /// <summary>Worker thread: copies the matching frames of a just-received batch (before any stage rewrites them).</summary>
    public void Offer(PacketBatch batch, PacketPool pool, IReadOnlyList<IPacketPort> ports, long now)
    {
        var session = Volatile.Read(ref _session);
        if (session is null)
        {
            return;
        }

        var packets = batch.Packets;
        for (var i = 0; i < packets.Length && !session.Done; i++)
        {
            ref var p = ref packets[i];
            var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
            var vxlan = p.IngressPort < ports.Count && ports[p.IngressPort].Kind == PortKind.Vxlan;
            var vni = -1;
            if (vxlan)
            {
                // The VXLAN port hands over the UDP payload: keep the inner Ethernet frame (RFC 7348 §5).
                if (frame.Length < VxlanHeader.Length + EthernetHeader.Length)
                {
                    continue;
                }

                vni = (int)(BinaryPrimitives.ReadUInt32BigEndian(frame[4..]) >> 8);
                frame = frame[VxlanHeader.Length..];
            }

            if (frame.Length < EthernetHeader.Length || !session.Matches(p, frame, vni))
            {
                continue;
            }

            byte[] bytes;
            if ((p.Flags & PacketFlags.VlanFromAux) != 0)
            {
                // The kernel took the tag out of band: put it back where a capture reader expects it.
                bytes = new byte[frame.Length + 4];
                frame[..12].CopyTo(bytes);
                BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(12), p.VlanTpid != 0 ? p.VlanTpid : (ushort)0x8100);
                BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(14), p.VlanTci);
                frame[12..].CopyTo(bytes.AsSpan(16));
            }
            else
            {
                bytes = frame.ToArray();
            }

            session.Add(new CapturedFrame(now, p.IngressPort, bytes));
        }
    }
}

/// <summary>One armed capture: frames accumulate until the count is reached or the caller stops it.</summary>
public sealed class CaptureSession
{
    private readonly PacketCapture _owner;
    private readonly CaptureFilter _filter;
    private readonly int _count;
    private readonly List<CapturedFrame> _frames = [];
    private readonly TaskCompletionSource _full = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _done;

    internal CaptureSession(PacketCapture owner, CaptureFilter filter, int count)
    {
        _owner = owner;
        _filter = filter;
        _count = count;
    }

    internal bool Done => _done;

    /// <summary>Completes when the count is reached.</summary>
    public Task Full => _full.Task;

    /// <summary>Disarms the capture and returns what it holds.</summary>
    public IReadOnlyList<CapturedFrame> Stop()
    {
        _done = true;
        _owner.Release(this);
        lock (_frames)
        {
            return [.. _frames];
        }
    }

    internal void Add(CapturedFrame frame)
    {
        lock (_frames)
        {
            _frames.Add(frame);
            if (_frames.Count >= _count)
            {
                _done = true;
                _owner.Release(this);
                _full.TrySetResult();
            }
        }
    }

    internal bool Matches(in PacketMeta p, ReadOnlySpan<byte> frame, int vni)
    {
        if (_filter.Port is { } port && port != p.IngressPort)
        {
            return false;
        }

        if (_filter.Vni is { } wantVni && wantVni != vni)
        {
            return false;
        }

        var etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        ushort? vlan = (p.Flags & PacketFlags.VlanFromAux) != 0 ? (ushort)(p.VlanTci & 0x0FFF) : null;
        var offset = 12;
        if (vlan is null && etherType is 0x8100 or 0x88A8 && frame.Length >= 18)
        {
            vlan = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) & 0x0FFF);
            offset = 16;
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        }

        if (_filter.Vlan is { } wantVlan && wantVlan != vlan)
        {
            return false;
        }

        if (_filter.EtherType is { } wantType && wantType != etherType)
        {
            return false;
        }

        if (_filter.Mac is { } mac)
        {
            var dst = MacAddress.Read(frame[..6]);
            var src = MacAddress.Read(frame[6..12]);
            if (dst != mac && src != mac)
            {
                return false;
            }
        }

        return true;
    }
}
