using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class VlanTagsTests
{
    [Fact]
    public void Untagged_frame_has_no_tags_and_payload_at_14()
    {
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 0800 45");
        Assert.Equal(ParseError.None, VlanTags.TryParse(frame, out var tags));
        Assert.Equal(0, tags.Count);
        Assert.Equal(EtherType.Ipv4, tags.PayloadEtherType);
        Assert.Equal(12, tags.EtherTypeOffset);
        Assert.Equal(14, tags.PayloadOffset);
    }

    [Fact]
    public void Single_8021q_tag_gives_vid_pcp_and_dei()
    {
        // PCP 5, DEI 1, VID 100: TCI = 101 1 000001100100 = 0xb064.
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 8100 b064 0806");
        Assert.Equal(ParseError.None, VlanTags.TryParse(frame, out var tags));
        Assert.Equal(1, tags.Count);
        Assert.Equal(100, tags.Outer.VlanId);
        Assert.Equal(5, tags.Outer.Pcp);
        Assert.True(tags.Outer.Dei);
        Assert.Equal(EtherType.Arp, tags.PayloadEtherType);
        Assert.Equal(16, tags.EtherTypeOffset);
        Assert.Equal(100, tags.InnermostVlanId);
    }

    [Fact]
    public void QinQ_frame_gives_service_and_customer_vids()
    {
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 88a8 00c8 8100 000a 86dd");
        Assert.Equal(ParseError.None, VlanTags.TryParse(frame, out var tags));
        Assert.Equal(2, tags.Count);
        Assert.Equal(EtherType.QinQ, tags.Outer.Tpid);
        Assert.Equal(200, tags.Outer.VlanId);
        Assert.Equal(10, tags.Inner.VlanId);
        Assert.Equal(EtherType.Ipv6, tags.PayloadEtherType);
        Assert.Equal(22, tags.PayloadOffset);
    }

    [Fact]
    public void Third_tag_is_reported()
    {
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 88a8 00c8 8100 000a 8100 000b 0800");
        Assert.Equal(ParseError.TooManyVlanTags, VlanTags.TryParse(frame, out _));
    }

    [Fact]
    public void Frame_ending_inside_a_tag_is_truncated()
    {
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 8100 000a 81");
        Assert.Equal(ParseError.Truncated, VlanTags.TryParse(frame, out _));
    }

    [Fact]
    public void Insert_moves_the_frame_start_back_and_writes_the_tag()
    {
        byte[] buffer = new byte[4 + 16];
        Hex.Bytes("020000000002 020000000001 0800 4500").CopyTo(buffer, 4);
        Assert.True(VlanTags.TryInsert(buffer, 4, 16, VlanTag.Customer(10, pcp: 3), out int offset));
        Assert.Equal(0, offset);
        Assert.Equal(Hex.Bytes("020000000002 020000000001 8100 600a 0800 4500"), buffer);
    }

    [Fact]
    public void Insert_without_headroom_changes_nothing()
    {
        byte[] buffer = Hex.Bytes("00 020000000002 020000000001 0800");
        byte[] before = (byte[])buffer.Clone();
        Assert.False(VlanTags.TryInsert(buffer, 1, 14, VlanTag.Customer(10), out _));
        Assert.Equal(before, buffer);
    }

    [Fact]
    public void Strip_of_untagged_frame_changes_nothing()
    {
        byte[] buffer = Hex.Bytes("020000000002 020000000001 0800 45000000");
        Assert.False(VlanTags.TryStripOuter(buffer, 0, buffer.Length, out int offset, out _));
        Assert.Equal(0, offset);
    }

    [Fact]
    public void Insert_then_strip_is_identity() =>
        Properties.Check(
            from frame in Properties.Bytes(14, 100)
            from headroom in Gen.Choose(4, 12)
            from vid in Gen.Choose(0, 4095)
            from qinq in Gen.Elements(true, false)
            select (frame, headroom, vid, qinq),
            t =>
            {
                byte[] buffer = new byte[t.headroom + t.frame.Length];
                t.frame.CopyTo(buffer, t.headroom);
                var tag = t.qinq ? VlanTag.Service((ushort)t.vid) : VlanTag.Customer((ushort)t.vid);
                Assert.True(VlanTags.TryInsert(buffer, t.headroom, t.frame.Length, tag, out int tagged));
                Assert.Equal(t.headroom - 4, tagged);
                if (VlanTags.TryParse(buffer.AsSpan(tagged, t.frame.Length + 4), out var tags) == ParseError.None)
                {
                    Assert.Equal(tag, tags.Outer);
                }

                Assert.True(VlanTags.TryStripOuter(buffer, tagged, t.frame.Length + 4, out int stripped, out var popped));
                Assert.Equal(t.headroom, stripped);
                Assert.Equal(tag, popped);
                Assert.Equal(t.frame, buffer.AsSpan(stripped, t.frame.Length).ToArray());
            });

    [Fact]
    public void Random_bytes_never_throw() =>
        Properties.Check(Properties.Bytes(0, 40), bytes =>
        {
            var error = VlanTags.TryParse(bytes, out var tags);
            return error != ParseError.None || tags.PayloadOffset <= bytes.Length;
        });
}
