using System.Buffers.Binary;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.PortGroup;

/// <summary>
/// Frames from an access port get the port's 802.1Q tag written inline and leave on the trunk;
/// frames from the trunk tagged VLAN v (in aux data, or inline, which is stripped) leave untagged on
/// the access ports of VLAN v. Untagged, unknown-VLAN and S-tagged trunk frames, and tagged frames on
/// access ports, are dropped. The ports cut the kernel peers' GSO super-frames into segments and
/// finish their partial checksums (PACKET_VNET_HDR); a partial checksum a port left (vnet header off) is
/// finished here. Single-threaded: <see cref="Run"/> polls every port until <see cref="Stop"/>.
/// </summary>
internal sealed class TaggingSwitch : IDisposable
{
    private const int TrunkIndex = 0;

    private readonly AfPacketPort[] _ports;
    private readonly ushort[] _vlans; // per port; 0 for the trunk
    private readonly TxQueue[] _queues;
    private readonly PacketPool _pool = new(4096);
    private readonly PacketBatch _batch = new();
    private readonly Poller _poller;
    private volatile bool _stopping;
    private long _forwarded;
    private long _dropped;
    private long _checksumsFinished;

    /// <summary>Opens the ports (inside <see cref="PortGroupOptions.Namespace"/> when set) on the calling thread.</summary>
    public TaggingSwitch(PortGroupOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var ports = new List<AfPacketPort>();
        try
        {
            using (options.Namespace is null ? null : NetworkNamespace.Enter(options.Namespace))
            {
                ports.Add(new AfPacketPort(new AfPacketPortOptions { InterfaceName = options.Trunk, Kind = PortKind.Trunk }));
                foreach (var (name, _) in options.Access)
                {
                    ports.Add(new AfPacketPort(new AfPacketPortOptions { InterfaceName = name, Kind = PortKind.Access }));
                }
            }
        }
        catch
        {
            ports.ForEach(p => p.Dispose());
            throw;
        }

        _ports = [.. ports];
        _vlans = [0, .. options.Access.Select(a => a.Vlan)];
        _queues = [.. _ports.Select(_ => new TxQueue())];
        _poller = new Poller(_ports.Length);
        foreach (var p in _ports)
        {
            _poller.Add(p);
        }
    }

    public string Stats =>
        $"forwarded {_forwarded}, dropped {_dropped}, checksums finished {_checksumsFinished + _ports.Sum(p => p.Counters.RxChecksumsFinished)}, " +
        $"GSO frames segmented {_ports.Sum(p => p.Counters.RxGsoSegmented)} (dropped {_ports.Sum(p => p.Counters.RxGsoDropped)}), " +
        $"truncated {_ports.Sum(p => p.Counters.RxTruncated)}, pool outstanding {_pool.Outstanding}";

    public int PoolOutstanding => _pool.Outstanding;

    public void Stop() => _stopping = true;

    public void Run()
    {
        while (!_stopping)
        {
            // Segments of a GSO super-frame that did not fit the last batch wait in their port: do not sleep.
            var pending = HasPendingFrames();
            if (_poller.Wait(pending ? 0 : 100) == 0 && !pending)
            {
                continue;
            }

            for (var i = 0; i < _ports.Length; i++)
            {
                if (!(_poller.IsReadable(i) || _ports[i].HasPendingFrames) || _ports[i].Receive(_batch, _pool, (ushort)i) == 0)
                {
                    continue;
                }

                foreach (ref var m in _batch.Packets)
                {
                    if (i == TrunkIndex)
                    {
                        FromTrunk(ref m);
                    }
                    else
                    {
                        FromAccess(ref m, _vlans[i]);
                    }
                }

                _batch.Clear();
                for (var q = 0; q < _ports.Length; q++)
                {
                    if (_queues[q].Count > 0)
                    {
                        _ports[q].Transmit(_queues[q], _pool);
                    }
                }
            }
        }
    }

    private bool HasPendingFrames()
    {
        foreach (var p in _ports)
        {
            if (p.HasPendingFrames)
            {
                return true;
            }
        }

        return false;
    }

    public void Dispose()
    {
        foreach (var p in _ports)
        {
            p.Dispose();
        }
    }

    private void FromAccess(ref PacketMeta m, ushort vlan)
    {
        var slot = _pool.Slot(m.Buffer);
        if ((m.Flags & PacketFlags.VlanFromAux) != 0 || m.Length < EthernetHeader.Length
            || EtherType.IsVlanTpid(BinaryPrimitives.ReadUInt16BigEndian(slot[(m.Offset + 12)..])))
        {
            Drop(m.Buffer);
            return;
        }

        FinishChecksum(ref m);
        if (!VlanTags.TryInsert(slot, m.Offset, m.Length, VlanTag.Customer(vlan), out var offset))
        {
            Drop(m.Buffer);
            return;
        }

        Enqueue(TrunkIndex, m.Buffer, offset, m.Length + VlanTag.Length);
    }

    private void FromTrunk(ref PacketMeta m)
    {
        var slot = _pool.Slot(m.Buffer);
        ushort vlan;
        if ((m.Flags & PacketFlags.VlanFromAux) != 0)
        {
            vlan = m.VlanTpid == EtherType.Vlan ? (ushort)(m.VlanTci & 0xFFF) : (ushort)0;
        }
        else if (VlanTags.TryStripOuter(slot, m.Offset, m.Length, out var offset, out var tag) && tag.Tpid == EtherType.Vlan)
        {
            vlan = tag.VlanId;
            m.Offset = offset;
            m.Length -= VlanTag.Length;
        }
        else
        {
            vlan = 0;
        }

        var first = Array.IndexOf(_vlans, vlan, 1);
        if (vlan == 0 || first < 0)
        {
            Drop(m.Buffer);
            return;
        }

        FinishChecksum(ref m);
        for (var p = Array.IndexOf(_vlans, vlan, first + 1); p > 0; p = Array.IndexOf(_vlans, vlan, p + 1))
        {
            var copy = _pool.Rent();
            if (copy < 0)
            {
                _dropped++;
                continue;
            }

            _pool.Frame(m.Buffer, m.Offset, m.Length).CopyTo(_pool.Frame(copy, m.Offset, m.Length));
            Enqueue(p, copy, m.Offset, m.Length);
        }

        Enqueue(first, m.Buffer, m.Offset, m.Length);
    }

    /// <summary>Completes a CHECKSUM_PARTIAL TCP/UDP checksum (IPv4 or IPv6) in place.</summary>
    private void FinishChecksum(ref PacketMeta m)
    {
        if ((m.Flags & PacketFlags.ChecksumNotReady) != 0 && L4Checksum.TryComplete(_pool.Frame(m.Buffer, m.Offset, m.Length)))
        {
            m.Flags &= ~PacketFlags.ChecksumNotReady;
            _checksumsFinished++;
        }
    }

    private void Enqueue(int port, int buffer, int offset, int length)
    {
        var queue = _queues[port];
        if (queue.IsFull)
        {
            _ports[port].Transmit(queue, _pool);
        }

        ref var f = ref queue.Add();
        f.Buffer = buffer;
        f.Offset = offset;
        f.Length = length;
        _forwarded++;
    }

    private void Drop(int buffer)
    {
        _pool.Return(buffer);
        _dropped++;
    }
}
