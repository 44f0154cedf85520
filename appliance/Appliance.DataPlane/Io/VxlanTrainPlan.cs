namespace Isthmus.DataPlane.Io;

/// <summary>One GSO train: frames <see cref="First"/>..+<see cref="Count"/> of <see cref="VxlanTrainPlan.Order"/>.</summary>
internal struct VxlanTrain
{
    /// <summary>Index of the train's first frame in <see cref="VxlanTrainPlan.Order"/>.</summary>
    public int First;

    /// <summary>Frames (UDP datagrams) in the train, 1..<see cref="VxlanTrainPlan.MaxSegments"/>.</summary>
    public int Count;

    /// <summary>The UDP_SEGMENT size: the first frame's length; every frame but the last has it, the last may be shorter.</summary>
    public int SegmentSize;

    /// <summary>The train's payload bytes (the sum of its frames' lengths).</summary>
    public int Bytes;

    /// <summary>Which of the sender's sockets (source ports) sends it.</summary>
    public int Socket;
}

/// <summary>
/// Cuts one transmit batch of VXLAN datagrams into UDP GSO trains (<see cref="VxlanGsoSender"/>), without sockets, so
/// the rules are testable on their own.
/// </summary>
/// <remarks>
/// <para>A train is one <c>sendmsg</c> with a <c>UDP_SEGMENT</c> control message: one destination (VTEP and port), one
/// source port (the socket), one segment size. The rules are the kernel's (<c>udp_send_skb</c>, <c>ip_append_data</c>):
/// every datagram but the last exactly <see cref="VxlanTrain.SegmentSize"/> bytes, the last one as long or shorter, at
/// most <see cref="MaxSegments"/> datagrams, and the payload within one IPv4 datagram's limit
/// (<see cref="MaxTrainBytes"/>).</para>
/// <para>The batch is grouped per socket first, keeping the batch's order inside each socket's group: a flow's
/// datagrams always hash to the same source port (RFC 7348 §5, <c>FlowEntropy</c>), so they keep their order; only
/// datagrams of different source ports (different flows) may overtake one another, which nothing on the wire
/// promises anyway (ECMP sends them on different paths). Within a group, a change of destination or a longer datagram
/// ends the train, and so does a shorter one after it is added (the kernel's last segment). The trains come out socket
/// by socket (<see cref="SocketFirst"/>, <see cref="SocketTrains"/>), so each socket's trains leave in one sendmmsg.</para>
/// <para>Allocation-free after construction; single-threaded (the port's worker).</para>
/// </remarks>
internal sealed class VxlanTrainPlan
{
    /// <summary>
    /// Datagrams per train: UDP_MAX_SEGMENTS, 64 on every kernel with UDP GSO (4.18+); 6.9+ take 128, which would
    /// halve a 256-frame batch's 4 sendmsg calls to 2 and is not worth a kernel probe (EINVAL on an older kernel).
    /// </summary>
    public const int MaxSegments = 64;

    /// <summary>An IPv4 datagram's payload limit for UDP: 65,535 - 20 (IPv4 header) - 8 (UDP header).</summary>
    public const int MaxTrainBytes = 65_535 - 20 - 8;

    private readonly int[] _next;
    private readonly int[] _head;
    private readonly int[] _tail;
    private readonly int[] _seen;
    private readonly int _socketMask;
    private int _generation;

    /// <param name="capacity">The most frames one batch holds.</param>
    /// <param name="sockets">The sender's sockets, a power of two (a frame's socket = its source port's low bits).</param>
    public VxlanTrainPlan(int capacity, int sockets)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sockets, 1);
        if ((sockets & (sockets - 1)) != 0)
        {
            throw new ArgumentException("The socket count is a power of two.", nameof(sockets));
        }

        Order = new int[capacity];
        Trains = new VxlanTrain[capacity];
        _next = new int[capacity];
        _head = new int[sockets];
        _tail = new int[sockets];
        _seen = new int[sockets];
        _socketMask = sockets - 1;
        SocketFirst = new int[sockets];
        SocketTrains = new int[sockets];
        UsedSockets = new int[sockets];
    }

    /// <summary>The batch's frame indices, grouped by socket, in batch order inside each group.</summary>
    public int[] Order { get; }

    /// <summary>The trains, <see cref="TrainCount"/> of them, grouped by socket.</summary>
    public VxlanTrain[] Trains { get; }

    public int TrainCount { get; private set; }

    /// <summary>The sockets with trains in this plan, <see cref="UsedSocketCount"/> of them, in order of first use.</summary>
    public int[] UsedSockets { get; }

    public int UsedSocketCount { get; private set; }

    /// <summary>Per socket: the index of its first train in <see cref="Trains"/>.</summary>
    public int[] SocketFirst { get; }

    /// <summary>Per socket: how many trains it sends.</summary>
    public int[] SocketTrains { get; }

    /// <summary>The socket a source port maps to (0 = the default port's socket: the first).</summary>
    public int SocketOf(ushort sourcePort) => sourcePort & _socketMask;

    /// <summary>Plans <paramref name="frames"/> (at most the capacity); returns the number of trains.</summary>
    public int Plan(ReadOnlySpan<TxFrame> frames)
    {
        if (frames.Length > Order.Length)
        {
            throw new ArgumentException("More frames than the plan's capacity.", nameof(frames));
        }

        // Group by socket: a linked list per socket through _next, sockets in order of first use.
        UsedSocketCount = 0;
        if (++_generation == int.MaxValue)
        {
            // Never reuse a stamp a socket may still hold from an old batch.
            Array.Clear(_seen);
            _generation = 1;
        }

        for (var i = 0; i < frames.Length; i++)
        {
            var s = SocketOf(frames[i].SourcePort);
            _next[i] = -1;
            if (_seen[s] != _generation)
            {
                _seen[s] = _generation;
                UsedSockets[UsedSocketCount++] = s;
                _head[s] = i;
            }
            else
            {
                _next[_tail[s]] = i;
            }

            _tail[s] = i;
        }

        var placed = 0;
        TrainCount = 0;
        for (var u = 0; u < UsedSocketCount; u++)
        {
            var s = UsedSockets[u];
            SocketFirst[s] = TrainCount;
            var open = false;
            ref var train = ref Trains[0];
            for (var i = _head[s]; i >= 0; i = _next[i])
            {
                ref readonly var f = ref frames[i];
                if (open)
                {
                    ref readonly var first = ref frames[Order[train.First]];
                    if (f.DestinationIp == first.DestinationIp && f.DestinationPort == first.DestinationPort
                        && f.Length <= train.SegmentSize && train.Count < MaxSegments && train.Bytes + f.Length <= MaxTrainBytes)
                    {
                        Order[placed++] = i;
                        train.Count++;
                        train.Bytes += f.Length;

                        // A shorter datagram can only be the last segment.
                        open = f.Length == train.SegmentSize;
                        continue;
                    }
                }

                train = ref Trains[TrainCount++];
                train = new VxlanTrain { First = placed, Count = 1, SegmentSize = f.Length, Bytes = f.Length, Socket = s };
                Order[placed++] = i;
                open = true;
            }

            SocketTrains[s] = TrainCount - SocketFirst[s];
        }

        return TrainCount;
    }
}
