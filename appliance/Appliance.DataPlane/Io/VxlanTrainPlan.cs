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
/// <para>The batch is grouped per (socket, destination VTEP and port) first, keeping the batch's order inside each
/// group: a flow's datagrams always hash to the same source port (RFC 7348 §5, <c>FlowEntropy</c>) and go to one VTEP,
/// so they keep their order; only datagrams of different groups (different flows, or different VTEPs) may overtake one
/// another, which nothing on the wire promises anyway (ECMP sends them on different paths). Within a group a longer
/// datagram ends the train, and so does a shorter one after it is added (the kernel's last segment), and so do the
/// segment and byte limits. The trains come out socket by socket (<see cref="SocketFirst"/>,
/// <see cref="SocketTrains"/>), so each socket's trains leave in one sendmmsg.</para>
/// <para>Allocation-free after construction; single-threaded (the port's worker).</para>
/// </remarks>
internal sealed class VxlanTrainPlan
{
    /// <summary>
    /// Datagrams per train: UDP_MAX_SEGMENTS, 64 on every kernel with UDP GSO (4.18+); newer ones (6.18 here) take
    /// 128, which would halve a 256-frame batch's 4 sendmsg calls to 2 and is not worth a kernel probe (EINVAL on an
    /// older kernel).
    /// </summary>
    public const int MaxSegments = 64;

    /// <summary>An IPv4 datagram's payload limit for UDP: 65,535 - 20 (IPv4 header) - 8 (UDP header).</summary>
    public const int MaxTrainBytes = 65_535 - 20 - 8;

    // Frames of a group (one socket, one destination) as a list through _next; groups of a socket through _groupNext.
    private readonly int[] _next;
    private readonly int[] _groupHead;
    private readonly int[] _groupTail;
    private readonly int[] _groupNext;
    private readonly int[] _socketGroupHead;
    private readonly int[] _socketGroupTail;
    private readonly int[] _socketSeen;

    // Open addressing (linear probing) from (destination, port, socket) to its group, valid where the stamp is current.
    private readonly ulong[] _slotKey;
    private readonly int[] _slotGroup;
    private readonly int[] _slotStamp;
    private readonly int _slotShift;
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
        _groupHead = new int[capacity];
        _groupTail = new int[capacity];
        _groupNext = new int[capacity];
        _socketGroupHead = new int[sockets];
        _socketGroupTail = new int[sockets];
        _socketSeen = new int[sockets];
        _socketMask = sockets - 1;
        SocketFirst = new int[sockets];
        SocketTrains = new int[sockets];
        UsedSockets = new int[sockets];

        // At most half full: a power of two at least twice the capacity.
        var bits = 1;
        while ((1 << bits) < 2 * capacity)
        {
            bits++;
        }

        _slotKey = new ulong[1 << bits];
        _slotGroup = new int[1 << bits];
        _slotStamp = new int[1 << bits];
        _slotShift = 64 - bits;
    }

    /// <summary>The batch's frame indices, grouped by socket and destination, in batch order inside each group.</summary>
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

        if (++_generation == int.MaxValue)
        {
            // Never let an old batch's stamp pass for this one's.
            Array.Clear(_slotStamp);
            Array.Clear(_socketSeen);
            _generation = 1;
        }

        // Group: one list of frames per (socket, destination), one list of groups per socket, sockets in order of first use.
        UsedSocketCount = 0;
        var groups = 0;
        for (var i = 0; i < frames.Length; i++)
        {
            ref readonly var f = ref frames[i];
            var s = SocketOf(f.SourcePort);
            var key = ((ulong)f.DestinationIp << 32) | ((ulong)f.DestinationPort << 16) | (uint)s;
            var slot = (int)((key * 0x9E37_79B9_7F4A_7C15UL) >> _slotShift);
            while (_slotStamp[slot] == _generation && _slotKey[slot] != key)
            {
                slot = (slot + 1) & (_slotKey.Length - 1);
            }

            _next[i] = -1;
            if (_slotStamp[slot] == _generation)
            {
                var g = _slotGroup[slot];
                _next[_groupTail[g]] = i;
                _groupTail[g] = i;
                continue;
            }

            var group = groups++;
            _slotStamp[slot] = _generation;
            _slotKey[slot] = key;
            _slotGroup[slot] = group;
            _groupHead[group] = _groupTail[group] = i;
            _groupNext[group] = -1;
            if (_socketSeen[s] != _generation)
            {
                _socketSeen[s] = _generation;
                UsedSockets[UsedSocketCount++] = s;
                _socketGroupHead[s] = group;
            }
            else
            {
                _groupNext[_socketGroupTail[s]] = group;
            }

            _socketGroupTail[s] = group;
        }

        // Cut each group into trains, socket by socket.
        var placed = 0;
        TrainCount = 0;
        for (var u = 0; u < UsedSocketCount; u++)
        {
            var s = UsedSockets[u];
            SocketFirst[s] = TrainCount;
            for (var g = _socketGroupHead[s]; g >= 0; g = _groupNext[g])
            {
                var open = false;
                ref var train = ref Trains[0];
                for (var i = _groupHead[g]; i >= 0; i = _next[i])
                {
                    var length = frames[i].Length;
                    if (open && length <= train.SegmentSize && train.Count < MaxSegments && train.Bytes + length <= MaxTrainBytes)
                    {
                        Order[placed++] = i;
                        train.Count++;
                        train.Bytes += length;

                        // A shorter datagram can only be the last segment.
                        open = length == train.SegmentSize;
                        continue;
                    }

                    train = ref Trains[TrainCount++];
                    train = new VxlanTrain { First = placed, Count = 1, SegmentSize = length, Bytes = length, Socket = s };
                    Order[placed++] = i;
                    open = true;
                }
            }

            SocketTrains[s] = TrainCount - SocketFirst[s];
        }

        return TrainCount;
    }
}
