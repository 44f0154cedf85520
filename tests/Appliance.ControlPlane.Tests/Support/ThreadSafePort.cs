using System.Collections.Concurrent;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>An in-memory port a test thread can feed and read while the worker thread runs it.</summary>
public sealed class ThreadSafePort(string name, PortKind kind) : IPacketPort
{
    private readonly ConcurrentQueue<MemoryFrame> _rx = new();
    private readonly ConcurrentQueue<MemoryFrame> _tx = new();

    public string Name { get; } = name;

    public PortKind Kind { get; } = kind;

    public int PollHandle => -1;

    public PortCounters Counters { get; } = new();

    public bool HasPendingFrames => !_rx.IsEmpty;

    public IReadOnlyCollection<MemoryFrame> Transmitted => _tx;

    public void Enqueue(MemoryFrame frame) => _rx.Enqueue(frame);

    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        var received = 0;
        while (!batch.IsFull && _rx.TryPeek(out var frame))
        {
            var buffer = pool.Rent();
            if (buffer < 0)
            {
                Counters.RxNoBuffer++;
                break;
            }

            _rx.TryDequeue(out _);
            frame.Bytes.CopyTo(pool.Frame(buffer, PacketPool.Headroom, frame.Bytes.Length));
            ref var p = ref batch.Add(buffer, PacketPool.Headroom, frame.Bytes.Length, portIndex);
            if (frame.VlanTci is { } tci)
            {
                p.VlanTci = tci;
                p.Flags |= PacketFlags.VlanFromAux;
            }

            p.RemoteVtep = frame.RemoteVtep;
            p.RemotePort = frame.RemotePort;
            Counters.RxPackets++;
            Counters.RxBytes += frame.Bytes.Length;
            received++;
        }

        return received;
    }

    public void Transmit(TxQueue queue, PacketPool pool)
    {
        foreach (var tx in queue.Frames)
        {
            _tx.Enqueue(new MemoryFrame(pool.Frame(tx.Buffer, tx.Offset, tx.Length).ToArray(), DestinationIp: tx.DestinationIp, DestinationPort: tx.DestinationPort));
            Counters.TxPackets++;
            Counters.TxBytes += tx.Length;
            pool.Return(tx.Buffer);
        }

        queue.Clear();
    }

    public void Dispose()
    {
    }
}

/// <summary>Opens <see cref="ThreadSafePort"/>s named after the document's ports; the test reaches them by name.</summary>
public sealed class MemoryPortFactory : IPortFactory
{
    private readonly ConcurrentDictionary<string, ThreadSafePort> _ports = new();

    public ThreadSafePort this[string name] => _ports[name];

    public IReadOnlyList<IPacketPort> Open(ConfigDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        return [.. document.Program.Ports.Select(spec => _ports.GetOrAdd(spec.Name, n => new ThreadSafePort(n, spec.Kind switch
        {
            PortSpecKind.Vxlan => PortKind.Vxlan,
            PortSpecKind.Trunk => PortKind.Trunk,
            _ => PortKind.Access,
        })))];
    }
}
