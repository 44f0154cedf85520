using System.Buffers.Binary;
using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Io;

/// <summary>Finds how the kernel would reach a remote VTEP: route, next hop, its MAC.</summary>
public interface IUnderlayResolver : IDisposable
{
    /// <summary>
    /// The path toward <paramref name="destinationIp"/> (host order) from <paramref name="sourceIp"/> (host
    /// order; 0 = the route's preferred source). Never throws for an unreachable or unresolved peer: it
    /// returns <see cref="UnderlayState.Unresolved"/> or <see cref="UnderlayState.KernelOnly"/>.
    /// </summary>
    UnderlayPath Resolve(uint destinationIp, uint sourceIp);
}

/// <summary>
/// <see cref="IUnderlayResolver"/> over rtnetlink (RFC 3549; Linux rtnetlink(7)): RTM_GETROUTE for the
/// egress interface, gateway and preferred source, RTM_GETNEIGH for the next hop's MAC and NUD state,
/// RTM_GETLINK for the interface's MAC and MTU. The socket is opened by the constructor and keeps that
/// thread's network namespace, so later calls from any thread ask the same namespace's tables.
/// </summary>
/// <remarks>
/// rtnetlink answers a request synchronously inside sendto(), so the reply is read with MSG_DONTWAIT
/// and the worker never blocks. Each <see cref="Resolve"/> costs three request/reply pairs (a few
/// microseconds); the VXLAN port calls it once per VTEP when it first sees one, then once a second.
/// Not thread-safe (one worker owns it).
/// </remarks>
public sealed unsafe class NetlinkUnderlayResolver : IUnderlayResolver
{
    private const ushort RtmNewLink = 16;
    private const ushort RtmGetLink = 18;
    private const ushort RtmNewRoute = 24;
    private const ushort RtmGetRoute = 26;
    private const ushort RtmNewNeigh = 28;
    private const ushort RtmGetNeigh = 30;
    private const ushort NlmsgError = 2;
    private const ushort NlmFRequest = 1;
    private const int NlmsgHeaderLength = 16;
    private const byte RtnUnicast = 1;
    private const ushort ArphrdEther = 1;

    // Attributes.
    private const ushort RtaDst = 1;
    private const ushort RtaOif = 4;
    private const ushort RtaGateway = 5;
    private const ushort RtaPrefSrc = 7;
    private const ushort NdaDst = 1;
    private const ushort NdaLladdr = 2;
    private const ushort IflaAddress = 1;
    private const ushort IflaMtu = 4;

    // NUD states (include/uapi/linux/neighbour.h).
    private const ushort NudReachable = 0x02;
    private const ushort NudStale = 0x04;
    private const ushort NudDelay = 0x08;
    private const ushort NudProbe = 0x10;
    private const ushort NudNoArp = 0x40;
    private const ushort NudPermanent = 0x80;

    private const int BufferSize = 8192;
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(BufferSize, pinned: true);
    private int _fd;
    private uint _sequence;

    public NetlinkUnderlayResolver()
    {
        _fd = Libc.Socket(Libc.AfNetlink, Libc.SockRaw | Libc.SockCloExec, Libc.NetlinkRoute);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_NETLINK, NETLINK_ROUTE) failed: {Libc.Describe(Libc.Errno)}");
        }
    }

    /// <inheritdoc />
    public UnderlayPath Resolve(uint destinationIp, uint sourceIp)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        var unresolved = UnderlayPath.Unresolved(destinationIp);
        if (!TryRoute(destinationIp, out var oif, out var gateway, out var prefSrc, out var unicast))
        {
            return unresolved;
        }

        var source = sourceIp != 0 ? sourceIp : prefSrc;
        if (!unicast || oif <= 0 || source == 0 || !TryLink(oif, out var linkType, out var mac, out var mtu) || linkType != ArphrdEther)
        {
            return unresolved with { State = UnderlayState.KernelOnly };
        }

        var nextHop = gateway != 0 ? gateway : destinationIp;
        if (!TryNeighbor(nextHop, oif, out var state, out var nextHopMac))
        {
            return unresolved with { InterfaceIndex = oif, Mtu = mtu, SourceMac = mac, SourceIp = source };
        }

        var usable = (state & (NudReachable | NudPermanent | NudNoArp)) != 0 ? UnderlayState.Resolved
            : (state & (NudStale | NudDelay | NudProbe)) != 0 ? UnderlayState.Stale
            : UnderlayState.Unresolved;
        return new UnderlayPath(usable, oif, mtu, mac, nextHopMac, source, destinationIp);
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
        }
    }

    private bool TryRoute(uint destination, out int oif, out uint gateway, out uint prefSrc, out bool unicast)
    {
        oif = 0;
        gateway = prefSrc = 0;
        unicast = false;

        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (12 bytes) + RTA_DST.
        Span<byte> body = stackalloc byte[12 + 8];
        body.Clear();
        body[0] = (byte)Libc.AfInet;
        body[1] = 32;
        WriteAttribute(body[12..], RtaDst, destination);
        if (!Request(RtmGetRoute, body, RtmNewRoute, out var reply) || reply.Length < 12)
        {
            return false;
        }

        unicast = reply[7] == RtnUnicast;
        foreach (var (type, value) in new AttributeReader(reply[12..]))
        {
            switch (type)
            {
                case RtaOif when value.Length >= 4:
                    oif = BinaryPrimitives.ReadInt32LittleEndian(value);
                    break;
                case RtaGateway when value.Length >= 4:
                    gateway = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
                case RtaPrefSrc when value.Length >= 4:
                    prefSrc = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
            }
        }

        return true;
    }

    private bool TryLink(int index, out ushort type, out ulong mac, out int mtu)
    {
        type = 0;
        mac = 0;
        mtu = 1500;

        // struct ifinfomsg: family, pad, type, index, flags, change (16 bytes).
        Span<byte> body = stackalloc byte[16];
        body.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(body[4..], index);
        if (!Request(RtmGetLink, body, RtmNewLink, out var reply) || reply.Length < 16)
        {
            return false;
        }

        type = BinaryPrimitives.ReadUInt16LittleEndian(reply[2..]);
        foreach (var (t, value) in new AttributeReader(reply[16..]))
        {
            if (t == IflaAddress && value.Length == 6)
            {
                mac = Packets.MacAddress.Read(value).Value;
            }
            else if (t == IflaMtu && value.Length >= 4)
            {
                mtu = BinaryPrimitives.ReadInt32LittleEndian(value);
            }
        }

        return mac != 0;
    }

    private bool TryNeighbor(uint address, int index, out ushort state, out ulong mac)
    {
        state = 0;
        mac = 0;

        // struct ndmsg: family, pad1, pad2, ifindex, state, flags, type (12 bytes) + NDA_DST.
        Span<byte> body = stackalloc byte[12 + 8];
        body.Clear();
        body[0] = (byte)Libc.AfInet;
        BinaryPrimitives.WriteInt32LittleEndian(body[4..], index);
        WriteAttribute(body[12..], NdaDst, address);
        if (!Request(RtmGetNeigh, body, RtmNewNeigh, out var reply) || reply.Length < 12)
        {
            return false;
        }

        state = BinaryPrimitives.ReadUInt16LittleEndian(reply[8..]);
        foreach (var (type, value) in new AttributeReader(reply[12..]))
        {
            if (type == NdaLladdr && value.Length == 6)
            {
                mac = Packets.MacAddress.Read(value).Value;
            }
        }

        return mac != 0;
    }

    private static void WriteAttribute(Span<byte> destination, ushort type, uint ipv4)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], ipv4);
    }

    /// <summary>
    /// Sends one request; true with the payload of its <paramref name="expected"/> reply (a view of the
    /// receive buffer, valid until the next request), false on NLMSG_ERROR or no reply.
    /// </summary>
    private bool Request(ushort type, ReadOnlySpan<byte> body, ushort expected, out ReadOnlySpan<byte> reply)
    {
        reply = default;
        DrainStale();
        var sequence = ++_sequence;
        var length = NlmsgHeaderLength + body.Length;
        var request = _buffer.AsSpan(0, length);
        BinaryPrimitives.WriteUInt32LittleEndian(request, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], NlmFRequest);
        BinaryPrimitives.WriteUInt32LittleEndian(request[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(request[12..], 0);
        body.CopyTo(request[NlmsgHeaderLength..]);
        fixed (byte* p = _buffer)
        {
            if (Libc.SendTo(_fd, p, (nuint)length, 0, null, 0) != length)
            {
                return false;
            }

            var n = (int)Libc.Recv(_fd, p, BufferSize, Libc.MsgDontWait);
            var offset = 0;
            while (n > 0 && offset + NlmsgHeaderLength <= n)
            {
                var message = _buffer.AsSpan(offset, n - offset);
                var messageLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(message);
                if (messageLength < NlmsgHeaderLength || messageLength > message.Length)
                {
                    return false;
                }

                var messageType = BinaryPrimitives.ReadUInt16LittleEndian(message[4..]);
                var messageSequence = BinaryPrimitives.ReadUInt32LittleEndian(message[8..]);
                if (messageSequence == sequence)
                {
                    reply = _buffer.AsSpan(offset + NlmsgHeaderLength, messageLength - NlmsgHeaderLength);
                    return messageType == expected;
                }

                offset += (messageLength + 3) & ~3;
            }
        }

        return false;
    }

    /// <summary>Reads and drops anything left over (a reply to an earlier request that was not read).</summary>
    private void DrainStale()
    {
        fixed (byte* p = _buffer)
        {
            while (Libc.Recv(_fd, p, BufferSize, Libc.MsgDontWait) > 0)
            {
            }
        }
    }

    /// <summary>Walks struct rtattr entries (length, type, value; 4-byte aligned).</summary>
    private ref struct AttributeReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public Attribute Current { get; private set; }

        public readonly AttributeReader GetEnumerator() => this;

        public bool MoveNext()
        {
            if (_rest.Length < 4)
            {
                return false;
            }

            var length = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
            if (length < 4 || length > _rest.Length)
            {
                return false;
            }

            Current = new Attribute((ushort)(BinaryPrimitives.ReadUInt16LittleEndian(_rest[2..]) & 0x3FFF), _rest[4..length]);
            var aligned = (length + 3) & ~3;
            _rest = aligned >= _rest.Length ? default : _rest[aligned..];
            return true;
        }
    }

    /// <summary>One attribute: its type (NLA_F_* flags masked off) and value.</summary>
    private readonly ref struct Attribute(ushort type, ReadOnlySpan<byte> value)
    {
        private readonly ushort _type = type;
        private readonly ReadOnlySpan<byte> _value = value;

        public void Deconstruct(out ushort type, out ReadOnlySpan<byte> value)
        {
            type = _type;
            value = _value;
        }
    }
}
