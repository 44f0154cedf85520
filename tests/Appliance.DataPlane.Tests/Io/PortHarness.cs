using System.Buffers.Binary;
using System.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>A received frame copied out of the pool (its buffer has been returned).</summary>
internal readonly record struct Received(PacketMeta Meta, byte[] Bytes);

internal static class PortHarness
{
    /// <summary>Local experimental EtherType (IEEE 802): test frames are easy to tell from IPv6 chatter.</summary>
    public const ushort TestEtherType = 0x88B5;

    public static readonly byte[] MacA = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
    public static readonly byte[] MacB = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

    public static AfPacketPort OpenAfPacket(string ns, string link, bool batch = true, PortKind kind = PortKind.Trunk, bool vnetHeader = true)
    {
        using (NetworkNamespace.Enter(ns))
        {
            return new AfPacketPort(new AfPacketPortOptions { InterfaceName = link, Kind = kind, BatchSyscalls = batch, VnetHeader = vnetHeader });
        }
    }

    /// <summary>Queues <paramref name="frame"/> (copied into a rented buffer at the headroom).</summary>
    public static void Enqueue(TxQueue queue, PacketPool pool, ReadOnlySpan<byte> frame, uint destinationIp = 0, ushort destinationPort = 0, ushort sourcePort = 0)
    {
        var b = pool.Rent();
        Assert.True(b >= 0, "test pool exhausted");
        frame.CopyTo(pool.Frame(b, PacketPool.Headroom, frame.Length));
        ref var f = ref queue.Add();
        f.Buffer = b;
        f.Offset = PacketPool.Headroom;
        f.Length = frame.Length;
        f.DestinationIp = destinationIp;
        f.DestinationPort = destinationPort;
        f.SourcePort = sourcePort;
    }

    /// <summary>
    /// An Ethernet frame from <see cref="MacA"/> to <see cref="MacB"/>: optional tags (TPID, TCI) written
    /// inline, then <see cref="TestEtherType"/> and a payload that starts with <paramref name="sequence"/>.
    /// </summary>
    public static byte[] TestFrame(int sequence, params (ushort Tpid, ushort Tci)[] tags)
    {
        var frame = new byte[12 + (4 * tags.Length) + 2 + 50];
        MacB.CopyTo(frame, 0);
        MacA.CopyTo(frame, 6);
        var o = 12;
        foreach (var (tpid, tci) in tags)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(o), tpid);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(o + 2), tci);
            o += 4;
        }

        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(o), TestEtherType);
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(o + 2), sequence);
        for (var i = o + 6; i < frame.Length; i++)
        {
            frame[i] = (byte)(i - o);
        }

        return frame;
    }

    /// <summary>
    /// Polls and receives from <paramref name="port"/> until <paramref name="expected"/> frames that
    /// match <paramref name="keep"/> have arrived or <paramref name="timeout"/> passes. Every buffer is
    /// returned to <paramref name="pool"/>.
    /// </summary>
    public static List<Received> Collect(
        IPacketPort port, PacketPool pool, int expected, Func<PacketMeta, byte[], bool> keep, TimeSpan? timeout = null)
    {
        var result = new List<Received>();
        var batch = new PacketBatch();
        var poller = new Poller(1);
        poller.Add(port);
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(5);
        while (result.Count < expected && clock.Elapsed < limit)
        {
            if (poller.Wait(50) == 0)
            {
                continue;
            }

            while (port.Receive(batch, pool, 0) > 0)
            {
                foreach (ref var m in batch.Packets)
                {
                    var bytes = pool.Frame(m.Buffer, m.Offset, m.Length).ToArray();
                    if (keep(m, bytes))
                    {
                        result.Add(new Received(m, bytes));
                    }

                    pool.Return(m.Buffer);
                }

                batch.Clear();
            }
        }

        return result;
    }

    /// <summary>
    /// Polls <paramref name="condition"/> every 10 ms until it holds or <paramref name="timeout"/> (10 s unless given)
    /// passes, and returns its last value. For kernel effects that land after the call that caused them has returned (a
    /// backlog or NAPI still draining, a counter not yet updated): the caller then asserts once, on the settled value.
    /// </summary>
    public static bool Eventually(Func<bool> condition, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (clock.Elapsed >= limit)
            {
                return false;
            }

            Thread.Sleep(10);
        }

        return true;
    }

    /// <summary>Reclaims completed chunks until none is in flight (or 5 s pass); returns how many are still in flight.</summary>
    public static int WaitForCompletions(XdpTxRing ring)
    {
        var clock = Stopwatch.StartNew();
        while (ring.InFlight > 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            ring.Reclaim();
            Thread.Sleep(1);
        }

        return ring.InFlight;
    }

    /// <summary>The EtherType after the MACs, ignoring any inline tags.</summary>
    public static bool IsTestFrame(byte[] frame)
    {
        var o = 12;
        while (o + 2 <= frame.Length)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(o));
            if (type is 0x8100 or 0x88a8)
            {
                o += 4;
                continue;
            }

            return type == TestEtherType;
        }

        return false;
    }
}
