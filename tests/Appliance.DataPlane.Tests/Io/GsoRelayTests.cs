using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using Xunit.Abstractions;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// Kernel host (TSO/GSO on, the veth default) -- veth -- two-port AF_PACKET relay -- veth -- kernel host.
/// The sender's veth hands the relay's socket TCP super-frames of up to 64 KB; the port must cut them.
/// </summary>
public sealed class GsoRelayTests(ITestOutputHelper output)
{
    [Fact]
    public void A_megabyte_over_TCP_from_a_host_with_TSO_crosses_a_user_space_relay_intact_and_quickly()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var lab = new Lab();
        var (h1, r, h2) = (lab.Namespace("s"), lab.Namespace("r"), lab.Namespace("d"));
        var (senderLink, relayA) = lab.Veth(h1, "s", r, "a");
        var (relayB, receiverLink) = lab.Veth(r, "b", h2, "d");
        Ip.Run("-n", h1, "addr", "add", "10.81.0.1/24", "dev", senderLink);
        Ip.Run("-n", h2, "addr", "add", "10.81.0.2/24", "dev", receiverLink);

        using var relay = new Relay(r, relayA, relayB);
        relay.Start();
        byte[] expected = RandomNumberGenerator.GetBytes(1 << 20);
        var clock = Stopwatch.StartNew();
        var received = Transfer(h1, h2, expected, TimeSpan.FromSeconds(30));
        clock.Stop();
        relay.Stop();

        output.WriteLine(
            $"1 MB in {clock.ElapsedMilliseconds} ms; port A: rx {relay.A.Counters.RxPackets} frames, " +
            $"GSO super-frames {relay.A.Counters.RxGsoSegmented} → {relay.A.Counters.RxGsoSegments} segments, " +
            $"dropped {relay.A.Counters.RxGsoDropped}, truncated {relay.A.Counters.RxTruncated}, " +
            $"checksums finished {relay.A.Counters.RxChecksumsFinished}; largest TCP segment {relay.LargestTcpFrame} bytes; " +
            $"port B: rx {relay.B.Counters.RxPackets}, GSO {relay.B.Counters.RxGsoSegmented}");
        Assert.Equal(SHA256.HashData(expected), SHA256.HashData(received));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.True(relay.A.Counters.RxGsoSegmented > 0, "the sender's veth should have handed over GSO super-frames");
        Assert.Equal(0, relay.A.Counters.RxGsoDropped);
        Assert.Equal(0, relay.A.Counters.RxTruncated);
        Assert.Equal(0, relay.BadChecksums);
        Assert.Equal(0, relay.Oversized);
        Assert.True(relay.TcpFrames > 700, $"TCP frames {relay.TcpFrames}");
        Assert.Equal(0, relay.Pool.Outstanding);
    }

    /// <summary>Sends <paramref name="data"/> from a TCP client in <paramref name="from"/> to a listener in <paramref name="to"/>.</summary>
    internal static byte[] Transfer(string from, string to, byte[] data, TimeSpan timeout)
    {
        Socket listener, client;
        using (NetworkNamespace.Enter(to))
        {
            listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        }

        using (NetworkNamespace.Enter(from))
        {
            client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        }

        using (listener)
        using (client)
        {
            listener.Bind(new IPEndPoint(IPAddress.Parse("10.81.0.2"), 5001));
            listener.Listen(1);
            using var cts = new CancellationTokenSource(timeout);
            var receive = Task.Run(async () =>
            {
                using var server = await listener.AcceptAsync(cts.Token);
                var buffer = new byte[data.Length];
                var total = 0;
                while (total < buffer.Length)
                {
                    var n = await server.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, cts.Token);
                    if (n == 0)
                    {
                        break;
                    }

                    total += n;
                }

                return buffer[..total];
            });
            var send = Task.Run(async () =>
            {
                await client.ConnectAsync(new IPEndPoint(IPAddress.Parse("10.81.0.2"), 5001), cts.Token);
                await client.SendAsync(data, SocketFlags.None, cts.Token);
                client.Shutdown(SocketShutdown.Send);
            });
            Task.WaitAll([send, receive], timeout);
            Assert.True(receive.IsCompletedSuccessfully, $"transfer did not complete in {timeout}");
            return receive.Result;
        }
    }

    /// <summary>Forwards every frame from A out of B and back, checking every IPv4 TCP frame on the way.</summary>
    internal sealed class Relay : IDisposable
    {
        private readonly Poller _poller = new(2);
        private readonly PacketBatch _batch = new();
        private readonly TxQueue[] _queues = [new(), new()];
        private Thread? _thread;
        private volatile bool _stopping;

        public Relay(string ns, string linkA, string linkB, bool vnetHeader = true)
        {
            using (NetworkNamespace.Enter(ns))
            {
                A = new AfPacketPort(new AfPacketPortOptions { InterfaceName = linkA, VnetHeader = vnetHeader });
                B = new AfPacketPort(new AfPacketPortOptions { InterfaceName = linkB, VnetHeader = vnetHeader });
            }

            _poller.Add(A);
            _poller.Add(B);
        }

        public AfPacketPort A { get; }

        public AfPacketPort B { get; }

        public PacketPool Pool { get; } = new(4096);

        public long TcpFrames { get; private set; }

        public long BadChecksums { get; private set; }

        /// <summary>TCP frames longer than the 1500-byte MTU allows (MSS + headers).</summary>
        public long Oversized { get; private set; }

        public int LargestTcpFrame { get; private set; }

        public void Start()
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "gso-relay" };
            _thread.Start();
        }

        public void Stop()
        {
            _stopping = true;
            _thread?.Join();
            _thread = null;
        }

        public void Dispose()
        {
            Stop();
            A.Dispose();
            B.Dispose();
        }

        private void Run()
        {
            AfPacketPort[] ports = [A, B];
            while (!_stopping)
            {
                var pending = A.HasPendingFrames || B.HasPendingFrames;
                if (_poller.Wait(pending ? 0 : 20) == 0 && !pending)
                {
                    continue;
                }

                for (var i = 0; i < 2; i++)
                {
                    if (!(_poller.IsReadable(i) || ports[i].HasPendingFrames) || ports[i].Receive(_batch, Pool, (ushort)i) == 0)
                    {
                        continue;
                    }

                    var queue = _queues[1 - i];
                    foreach (ref var m in _batch.Packets)
                    {
                        Check(Pool.Frame(m.Buffer, m.Offset, m.Length));
                        ref var f = ref queue.Add();
                        f.Buffer = m.Buffer;
                        f.Offset = m.Offset;
                        f.Length = m.Length;
                    }

                    _batch.Clear();
                    ports[1 - i].Transmit(queue, Pool);
                }
            }
        }

        private void Check(ReadOnlySpan<byte> frame)
        {
            if (frame.Length < 34 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherType.Ipv4 || frame[23] != IpProtocol.Tcp)
            {
                return;
            }

            TcpFrames++;
            LargestTcpFrame = Math.Max(LargestTcpFrame, frame.Length);
            if (frame.Length > 14 + 1500)
            {
                Oversized++;
            }

            var copy = frame.ToArray();
            if (Ipv4Header.TryParse(copy.AsSpan(14), out var ip) != ParseError.None || !ip.IsHeaderChecksumValid
                || !L4Checksum.IsValid(copy, 14))
            {
                BadChecksums++;
            }
        }
    }
}
