using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class VxlanHeaderTests
{
    [Fact]
    public void Reads_a_captured_linux_vxlan_header()
    {
        // Linux "ip link add vxlan0 type vxlan id 5010": flags 08, VNI 0x001392.
        byte[] payload = Hex.Bytes("08000000 00139200 ffffffffffff");
        Assert.Equal(ParseError.None, VxlanHeader.TryParse(payload, out var vxlan));
        Assert.Equal(5010u, vxlan.Vni);
        Assert.False(vxlan.HasReservedBitsSet);
        Assert.Equal(6, vxlan.InnerFrame.Length);
    }

    [Fact]
    public void I_flag_clear_is_bad_flags()
    {
        byte[] payload = Hex.Bytes("00000000 00139200");
        Assert.Equal(ParseError.BadVxlanFlags, VxlanHeader.TryParse(payload, out _));
    }

    [Fact]
    public void Reserved_bits_are_accepted_but_reported()
    {
        // RFC 7348 section 5: reserved fields MUST be ignored on receipt.
        byte[] payload = Hex.Bytes("0c000001 001392ff");
        Assert.Equal(ParseError.None, VxlanHeader.TryParse(payload, out var vxlan));
        Assert.Equal(5010u, vxlan.Vni);
        Assert.True(vxlan.HasReservedBitsSet);
    }

    [Fact]
    public void Short_payload_is_truncated()
    {
        Assert.Equal(ParseError.Truncated, VxlanHeader.TryParse(Hex.Bytes("08000000 001392"), out _));
    }

    [Fact]
    public void Write_then_parse_round_trips_the_vni() =>
        Properties.Check(Gen.Choose(0, (int)VxlanHeader.MaxVni), vni =>
        {
            byte[] bytes = new byte[VxlanHeader.Length];
            VxlanHeader.Write(bytes, (uint)vni);
            return VxlanHeader.TryParse(bytes, out var vxlan) == ParseError.None
                && vxlan.Vni == (uint)vni
                && !vxlan.HasReservedBitsSet;
        });

    [Fact]
    public void Vni_setter_keeps_the_trailing_reserved_octet()
    {
        byte[] bytes = Hex.Bytes("08000000 000001ab");
        var vxlan = new VxlanHeader(bytes);
        vxlan.Vni = 0xabcdef;
        Assert.Equal(Hex.Bytes("08000000 abcdefab"), bytes);
    }
}
