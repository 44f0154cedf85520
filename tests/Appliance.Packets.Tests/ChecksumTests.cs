using System.Buffers.Binary;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class ChecksumTests
{
    // RFC 1071 section 3, numerical example: words 0001 f203 f4f5 f6f7 sum to ddf2 after the fold.
    private static readonly byte[] Rfc1071Example = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    [Fact]
    public void Rfc1071_example_folds_to_ddf2()
    {
        Assert.Equal(0xddf2, Checksum.Fold(Checksum.Add(Rfc1071Example)));
        Assert.Equal(0x220d, Checksum.Compute(Rfc1071Example));
    }

    [Fact]
    public void Captured_ipv4_header_checksum_is_b1e6()
    {
        // The worked example from Wikipedia's "IPv4 header checksum": 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        byte[] header = Hex.Bytes("45000073000040004011 0000 c0a80001c0a800c7");
        Assert.Equal(0xb861, Checksum.Compute(header));
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), 0xb861);
        Assert.True(Checksum.IsValid(header));
    }

    [Fact]
    public void Odd_length_data_pads_the_last_byte_with_zero()
    {
        Assert.Equal(Checksum.Compute([0x12, 0x34, 0x56, 0x00]), Checksum.Compute([0x12, 0x34, 0x56]));
    }

    [Fact]
    public void Fast_sum_equals_the_word_by_word_reference_for_any_data() =>
        Properties.Check(Properties.Bytes(0, 300), data => Checksum.Fold(Checksum.Add(data)) == ReferenceFold(data));

    [Fact]
    public void Sums_of_even_length_pieces_compose() =>
        Properties.Check(
            from a in Properties.Bytes(0, 40).Select(b => b.Length % 2 == 0 ? b : b[..^1])
            from b in Properties.Bytes(0, 40)
            select (a, b),
            t => Checksum.Fold(Checksum.Add(t.b, Checksum.Add(t.a))) == ReferenceFold([.. t.a, .. t.b]));

    /// <summary>A folded delta applied with one carry equals the general Apply, for every checksum and delta.</summary>
    [Fact]
    public void Apply_of_a_folded_delta_equals_the_general_apply()
    {
        Properties.Check(
            from checksum in Properties.UInt16
            from delta in Properties.UInt16
            select (checksum, delta),
            s => Checksum.ApplyFolded(s.checksum, s.delta) == Checksum.Apply(s.checksum, (ulong)s.delta),
            runs: 2000);

        // Every checksum with the deltas at the carry's edges.
        foreach (ushort delta in new ushort[] { 0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF })
        {
            for (var checksum = 0; checksum <= 0xFFFF; checksum++)
            {
                Assert.Equal(Checksum.Apply((ushort)checksum, (ulong)delta), Checksum.ApplyFolded((ushort)checksum, delta));
            }
        }
    }

    [Fact]
    public void Incremental_16_bit_update_equals_full_recompute() =>
        Properties.Check(
            from data in Properties.Bytes(4, 80).Select(b => b.Length % 2 == 0 ? b : b[..^1])
            from word in Gen.Choose(0, 1000)
            from value in Properties.UInt16
            select (data, word, value),
            t =>
            {
                var (data, word, value) = t;
                data[0] |= 0x40; // real headers are never all zero; RFC 1624 section 4 excludes that case
                int at = word % (data.Length / 2) * 2;
                int checksumAt = at == 0 ? 2 : 0;
                data[checksumAt] = 0;
                data[checksumAt + 1] = 0;
                ushort checksum = Checksum.Compute(data);
                ushort old = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at));
                if (at == 0)
                {
                    value |= 0x4000;
                }

                BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at), value);
                return Checksum.Update(checksum, old, value) == Checksum.Compute(data);
            });

    [Fact]
    public void Incremental_32_bit_update_equals_full_recompute() =>
        Properties.Check(
            from data in Properties.Bytes(8, 80).Select(b => b.Length % 4 == 0 ? b : b[..(b.Length & ~3)])
            from value in Properties.UInt32
            select (data, value),
            t =>
            {
                var (data, value) = t;
                data[0] = 0x45;
                data[1] = 0;
                data[2] = 0;
                data[3] = 0;
                ushort checksum = Checksum.Compute(data);
                int at = data.Length - 4;
                uint old = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
                BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at), value);
                return Checksum.Update(checksum, old, value) == Checksum.Compute(data);
            });

    [Fact]
    public void Incremental_128_bit_update_equals_full_recompute() =>
        Properties.Check(
            from before in Properties.Ipv6
            from after in Properties.Ipv6
            select (before, after),
            t =>
            {
                byte[] data = new byte[20];
                data[0] = 0x60;
                t.before.WriteTo(data.AsSpan(4));
                ushort checksum = Checksum.Compute(data);
                t.after.WriteTo(data.AsSpan(4));
                return Checksum.Update(checksum, t.before, t.after) == Checksum.Compute(data);
            });

    [Fact]
    public void Ipv4_pseudo_header_sum_matches_the_laid_out_bytes() =>
        Properties.Check(
            from s in Properties.Ipv4
            from d in Properties.Ipv4
            from length in Properties.UInt16
            select (s, d, length),
            t =>
            {
                byte[] pseudo = new byte[12];
                t.s.WriteTo(pseudo);
                t.d.WriteTo(pseudo.AsSpan(4));
                pseudo[9] = IpProtocol.Udp;
                BinaryPrimitives.WriteUInt16BigEndian(pseudo.AsSpan(10), t.length);
                return Checksum.Fold(Checksum.PseudoHeaderSum(t.s, t.d, IpProtocol.Udp, t.length)) == ReferenceFold(pseudo);
            });

    [Fact]
    public void Ipv6_pseudo_header_sum_matches_the_laid_out_bytes() =>
        Properties.Check(
            from s in Properties.Ipv6
            from d in Properties.Ipv6
            from length in Properties.UInt32
            select (s, d, length),
            t =>
            {
                byte[] pseudo = new byte[40];
                t.s.WriteTo(pseudo);
                t.d.WriteTo(pseudo.AsSpan(16));
                BinaryPrimitives.WriteUInt32BigEndian(pseudo.AsSpan(32), t.length);
                pseudo[39] = IpProtocol.Tcp;
                return Checksum.Fold(Checksum.PseudoHeaderSum(t.s, t.d, IpProtocol.Tcp, t.length)) == ReferenceFold(pseudo);
            });

    private static ushort ReferenceFold(byte[] data)
    {
        uint sum = 0;
        for (int i = 0; i < data.Length; i += 2)
        {
            sum += (uint)(data[i] << 8) | (i + 1 < data.Length ? data[i + 1] : 0u);
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)sum;
    }
}
