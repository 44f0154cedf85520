using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FsCheck.Fluent;
using Xunit;

namespace Isthmus.Packets.Tests;

public class UncheckedBytesTests
{
    /// <summary>Every read equals the bounds-checked BinaryPrimitives read of the same bytes, at any offset (unaligned too).</summary>
    [Fact]
    public void Reads_equal_the_checked_reads_at_every_offset() =>
        Properties.Check(
            from bytes in Properties.Bytes(8, 80)
            from offset in Gen.Choose(0, bytes.Length - 8)
            select (bytes, offset),
            sample =>
            {
                var (bytes, offset) = sample;
                ref var first = ref MemoryMarshal.GetArrayDataReference(bytes);
                var at = bytes.AsSpan(offset);
                Assert.Equal(BinaryPrimitives.ReadUInt16BigEndian(at), UncheckedBytes.ReadUInt16BigEndian(ref first, offset));
                Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(at), UncheckedBytes.ReadUInt32BigEndian(ref first, offset));
                Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(at), UncheckedBytes.ReadUInt32LittleEndian(ref first, offset));
                Assert.Equal(BinaryPrimitives.ReadUInt64LittleEndian(at), UncheckedBytes.ReadUInt64LittleEndian(ref first, offset));
                Assert.Equal(BinaryPrimitives.ReadUInt64BigEndian(at), UncheckedBytes.ReadUInt64BigEndian(ref first, offset));
            });

    /// <summary>Every write leaves the bytes the bounds-checked BinaryPrimitives write leaves, at any offset, and nothing else changes.</summary>
    [Fact]
    public void Writes_equal_the_checked_writes_at_every_offset() =>
        Properties.Check(
            from bytes in Properties.Bytes(8, 80)
            from offset in Gen.Choose(0, bytes.Length - 8)
            from value in Gen.Choose(int.MinValue, int.MaxValue)
            select (bytes, offset, (uint)value),
            sample =>
            {
                var (bytes, offset, value) = sample;
                var expected = bytes.ToArray();
                var actual = bytes.ToArray();
                BinaryPrimitives.WriteUInt16BigEndian(expected.AsSpan(offset), (ushort)value);
                UncheckedBytes.WriteUInt16BigEndian(ref MemoryMarshal.GetArrayDataReference(actual), offset, (ushort)value);
                Assert.Equal(expected, actual);
                BinaryPrimitives.WriteUInt32BigEndian(expected.AsSpan(offset), value);
                UncheckedBytes.WriteUInt32BigEndian(ref MemoryMarshal.GetArrayDataReference(actual), offset, value);
                Assert.Equal(expected, actual);
                var wide = ((ulong)value << 32) | (~value ^ (uint)offset);
                BinaryPrimitives.WriteUInt64BigEndian(expected.AsSpan(offset), wide);
                UncheckedBytes.WriteUInt64BigEndian(ref MemoryMarshal.GetArrayDataReference(actual), offset, wide);
                Assert.Equal(expected, actual);
            });

    [Fact]
    public void Big_endian_means_network_order()
    {
        byte[] ip = [0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 20, 0, 100];
        ref var first = ref MemoryMarshal.GetArrayDataReference(ip);
        Assert.Equal(0x54, UncheckedBytes.ReadUInt16BigEndian(ref first, 2));
        Assert.Equal(0x4000, UncheckedBytes.ReadUInt16BigEndian(ref first, 6));
        Assert.Equal(0x0A14_0064u, UncheckedBytes.ReadUInt32BigEndian(ref first, 12));
    }
}
