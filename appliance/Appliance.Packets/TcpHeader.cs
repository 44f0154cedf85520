// TCP header, RFC 9293 section 3.1:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          Source Port          |       Destination Port        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                        Sequence Number                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Acknowledgment Number                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Data |       |C|E|U|A|P|R|S|F|                               |
//  | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//  |       |       |R|E|G|K|H|T|N|N|                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Checksum            |         Urgent Pointer        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           [Options]                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                             Data ...
//
// Options (section 3.2): kind 0 End of Option List, kind 1 No-Operation, otherwise kind, length
// (counting kind and length) and data. MSS is kind 2, length 4, a 16-bit value (section 3.7.1).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>TCP control bits (RFC 9293 section 3.1; ECE/CWR from RFC 3168).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>View over a TCP segment (header, options and data to the end of the IP payload).</summary>
public readonly ref struct TcpHeader
{
    public const int MinLength = 20;
    public const int MaxLength = 60;
    public const byte OptionEnd = 0;
    public const byte OptionNop = 1;
    public const byte OptionMss = 2;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TcpHeader(Span<byte> bytes) => _bytes = bytes;

    /// <summary><paramref name="ipPayload"/> is the IP payload; the segment runs to its end.</summary>
    public static ParseError TryParse(Span<byte> ipPayload, out TcpHeader header)
    {
        header = default;
        if (ipPayload.Length < MinLength)
        {
            return ParseError.Truncated;
        }

        int headerLength = (ipPayload[12] >> 4) * 4;
        if (headerLength < MinLength)
        {
            return ParseError.BadHeaderLength;
        }

        if (headerLength > ipPayload.Length)
        {
            return ParseError.Truncated;
        }

        header = new TcpHeader(ipPayload);
        return ParseError.None;
    }

    public ushort SourcePort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes, value);
    }

    public ushort DestinationPort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[2..], value);
    }

    public uint SequenceNumber
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[4..], value);
    }

    public uint AcknowledgmentNumber
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[8..]);
        set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[8..], value);
    }

    /// <summary>Data offset in 32-bit words.</summary>
    public byte DataOffset => (byte)(_bytes[12] >> 4);

    public int HeaderLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (_bytes[12] >> 4) * 4;
    }

    public TcpFlags Flags
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (TcpFlags)_bytes[13];
        set => _bytes[13] = (byte)value;
    }

    public ushort Window
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[14..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[14..], value);
    }

    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[16..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[16..], value);
    }

    public ushort UrgentPointer
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[18..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[18..], value);
    }

    public Span<byte> Options => _bytes[MinLength..HeaderLength];

    public Span<byte> Segment => _bytes;

    public Span<byte> Payload => _bytes[HeaderLength..];

    /// <summary>
    /// Finds the MSS option. Returns false when there is none or the options are malformed
    /// (a length below 2 or past the header); <paramref name="valueOffset"/> is from the TCP header start.
    /// </summary>
    public bool TryGetMss(out ushort mss, out int valueOffset)
    {
        mss = 0;
        valueOffset = -1;
        var options = Options;
        int i = 0;
        while (i < options.Length)
        {
            byte kind = options[i];
            if (kind == OptionEnd)
            {
                return false;
            }

            if (kind == OptionNop)
            {
                i++;
                continue;
            }

            if (i + 1 >= options.Length)
            {
                return false;
            }

            int length = options[i + 1];
            if (length < 2 || i + length > options.Length)
            {
                return false;
            }

            if (kind == OptionMss)
            {
                if (length != 4)
                {
                    return false;
                }

                mss = BinaryPrimitives.ReadUInt16BigEndian(options[(i + 2)..]);
                valueOffset = MinLength + i + 2;
                return true;
            }

            i += length;
        }

        return false;
    }

    /// <summary>
    /// MSS clamping: lowers the MSS option to <paramref name="maxMss"/> if it is larger and patches the
    /// checksum with RFC 1624 eqn. 3. Returns true when the segment changed. For a packet whose checksum
    /// the kernel left partial, complete it first (<see cref="L4Checksum.Complete"/>).
    /// </summary>
    public bool ClampMss(ushort maxMss)
    {
        if (!TryGetMss(out ushort mss, out int at) || mss <= maxMss)
        {
            return false;
        }

        BinaryPrimitives.WriteUInt16BigEndian(_bytes[at..], maxMss);
        // A NOP before MSS puts the value at an odd offset, straddling two checksum words. Its bytes
        // then weigh as the byte-swapped value (256 * 256 == 1 in ones' complement arithmetic).
        Checksum = (at & 1) == 0
            ? Packets.Checksum.Update(Checksum, mss, maxMss)
            : Packets.Checksum.Update(Checksum, BinaryPrimitives.ReverseEndianness(mss), BinaryPrimitives.ReverseEndianness(maxMss));
        return true;
    }

    /// <summary>Patches the checksum for a 16-bit change (a port) with RFC 1624 eqn. 3.</summary>
    public void UpdateChecksum(ushort oldValue, ushort newValue) => Checksum = Packets.Checksum.Update(Checksum, oldValue, newValue);

    /// <summary>Patches the checksum for a 32-bit change (an IPv4 address in the pseudo-header).</summary>
    public void UpdateChecksum(uint oldValue, uint newValue) => Checksum = Packets.Checksum.Update(Checksum, oldValue, newValue);

    /// <summary>Writes a 20-byte header (no options, checksum 0, urgent 0); returns <see cref="MinLength"/>.</summary>
    public static int Write(Span<byte> destination, ushort sourcePort, ushort destinationPort, uint sequence, uint acknowledgment, TcpFlags flags, ushort window)
    {
        var header = destination[..MinLength];
        BinaryPrimitives.WriteUInt16BigEndian(header, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(header[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(header[8..], acknowledgment);
        header[12] = (MinLength / 4) << 4;
        header[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(header[14..], window);
        BinaryPrimitives.WriteUInt32BigEndian(header[16..], 0);
        return MinLength;
    }
}
