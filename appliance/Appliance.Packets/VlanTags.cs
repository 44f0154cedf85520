// IEEE 802.1Q VLAN tag (C-tag, TPID 0x8100) and IEEE 802.1ad service tag (S-tag, TPID 0x88a8),
// inserted between the source MAC and the EtherType (IEEE 802.1Q-2018 section 9.6):
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     TPID (0x8100 / 0x88a8)    | PCP |D|        VLAN ID        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//                                   \______ TCI (tag control) _____/
//
// A QinQ frame: dst(6) src(6) [88a8 S-TCI] [8100 C-TCI] EtherType payload.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>One VLAN tag: the TPID and the tag control information.</summary>
public readonly record struct VlanTag(ushort Tpid, ushort Tci)
{
    public const int Length = 4;

    /// <summary>VID, 12 bits. 0 means priority-tagged, 4095 is reserved.</summary>
    public ushort VlanId => (ushort)(Tci & 0x0FFF);

    /// <summary>Priority code point, 3 bits (IEEE 802.1Q section 6.9.3).</summary>
    public byte Pcp => (byte)(Tci >> 13);

    /// <summary>Drop eligible indicator.</summary>
    public bool Dei => (Tci & 0x1000) != 0;

    public static ushort MakeTci(ushort vlanId, byte pcp = 0, bool dei = false) =>
        (ushort)(((pcp & 0x7) << 13) | (dei ? 0x1000 : 0) | (vlanId & 0x0FFF));

    /// <summary>An 802.1Q C-tag.</summary>
    public static VlanTag Customer(ushort vlanId, byte pcp = 0, bool dei = false) => new(EtherType.Vlan, MakeTci(vlanId, pcp, dei));

    /// <summary>An 802.1ad S-tag.</summary>
    public static VlanTag Service(ushort vlanId, byte pcp = 0, bool dei = false) => new(EtherType.QinQ, MakeTci(vlanId, pcp, dei));
}

/// <summary>
/// The result of walking up to two VLAN tags of an Ethernet frame, and in-place tag insertion and
/// removal for ports that write tags inline.
/// </summary>
public readonly struct VlanTags
{
    public const int MaxTags = 2;

    private VlanTags(int count, VlanTag outer, VlanTag inner, ushort etherType)
    {
        Count = count;
        Outer = outer;
        Inner = inner;
        PayloadEtherType = etherType;
    }

    /// <summary>0, 1 or 2.</summary>
    public int Count { get; }

    /// <summary>The first tag on the wire (the S-tag of a QinQ frame); default when <see cref="Count"/> is 0.</summary>
    public VlanTag Outer { get; }

    /// <summary>The second tag; default when <see cref="Count"/> is below 2.</summary>
    public VlanTag Inner { get; }

    /// <summary>The EtherType after the tags.</summary>
    public ushort PayloadEtherType { get; }

    /// <summary>Offset of the payload EtherType field from the frame start: 12, 16 or 20.</summary>
    public int EtherTypeOffset => EthernetHeader.EtherTypeOffset + (Count * VlanTag.Length);

    /// <summary>Offset of the L3 header from the frame start: 14, 18 or 22.</summary>
    public int PayloadOffset => EtherTypeOffset + 2;

    /// <summary>The VID of the innermost tag (the customer VLAN), or 0 if untagged.</summary>
    public ushort InnermostVlanId => Count switch { 0 => 0, 1 => Outer.VlanId, _ => Inner.VlanId };

    /// <summary>
    /// Walks the tags after the source MAC. A third tag is <see cref="ParseError.TooManyVlanTags"/>;
    /// a frame that ends inside a tag or before the EtherType is <see cref="ParseError.Truncated"/>.
    /// </summary>
    public static ParseError TryParse(ReadOnlySpan<byte> frame, out VlanTags tags)
    {
        tags = default;
        if (frame.Length < EthernetHeader.Length)
        {
            return ParseError.Truncated;
        }

        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (!EtherType.IsVlanTpid(type))
        {
            tags = new VlanTags(0, default, default, type);
            return ParseError.None;
        }

        if (frame.Length < 18)
        {
            return ParseError.Truncated;
        }

        var outer = new VlanTag(type, BinaryPrimitives.ReadUInt16BigEndian(frame[14..]));
        type = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
        if (!EtherType.IsVlanTpid(type))
        {
            tags = new VlanTags(1, outer, default, type);
            return ParseError.None;
        }

        if (frame.Length < 22)
        {
            return ParseError.Truncated;
        }

        var inner = new VlanTag(type, BinaryPrimitives.ReadUInt16BigEndian(frame[18..]));
        type = BinaryPrimitives.ReadUInt16BigEndian(frame[20..]);
        if (EtherType.IsVlanTpid(type))
        {
            return ParseError.TooManyVlanTags;
        }

        tags = new VlanTags(2, outer, inner, type);
        return ParseError.None;
    }

    /// <summary>
    /// Pushes a tag as the new outer tag, in place: the frame starts 4 bytes earlier, its 12 MAC bytes
    /// move back and the tag is written after them. Needs 4 bytes of headroom before
    /// <paramref name="frameOffset"/>. The new length is <paramref name="frameLength"/> + 4.
    /// </summary>
    /// <returns>False (buffer untouched) without headroom or when the frame is shorter than an Ethernet header.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryInsert(Span<byte> buffer, int frameOffset, int frameLength, VlanTag tag, out int newOffset)
    {
        newOffset = frameOffset;
        if (frameOffset < VlanTag.Length || frameLength < EthernetHeader.Length
            || (uint)frameOffset + (uint)frameLength > (uint)buffer.Length)
        {
            return false;
        }

        newOffset = frameOffset - VlanTag.Length;
        buffer.Slice(frameOffset, 12).CopyTo(buffer.Slice(newOffset, 12));
        var tagBytes = buffer.Slice(newOffset + 12, VlanTag.Length);
        BinaryPrimitives.WriteUInt16BigEndian(tagBytes, tag.Tpid);
        BinaryPrimitives.WriteUInt16BigEndian(tagBytes[2..], tag.Tci);
        return true;
    }

    /// <summary>
    /// Pops the outer tag in place: the 12 MAC bytes move forward 4 bytes over the tag, so the frame
    /// starts at <paramref name="newOffset"/> = <paramref name="frameOffset"/> + 4 and is 4 bytes shorter.
    /// </summary>
    /// <returns>False (buffer untouched) when the frame carries no tag or is too short to hold one.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryStripOuter(Span<byte> buffer, int frameOffset, int frameLength, out int newOffset, out VlanTag stripped)
    {
        newOffset = frameOffset;
        stripped = default;
        if (frameOffset < 0 || frameLength < EthernetHeader.Length + VlanTag.Length
            || (uint)frameOffset + (uint)frameLength > (uint)buffer.Length)
        {
            return false;
        }

        var frame = buffer.Slice(frameOffset, frameLength);
        ushort tpid = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (!EtherType.IsVlanTpid(tpid))
        {
            return false;
        }

        stripped = new VlanTag(tpid, BinaryPrimitives.ReadUInt16BigEndian(frame[14..]));
        newOffset = frameOffset + VlanTag.Length;
        frame[..12].CopyTo(buffer.Slice(newOffset, 12));
        return true;
    }
}
