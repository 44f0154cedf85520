using System.Buffers.Binary;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>A growable big-endian byte writer with back-patching for length fields.</summary>
public sealed class BgpWriter
{
    private byte[] _buffer;

    public BgpWriter(int capacity = 256) => _buffer = new byte[capacity];

    public int Length { get; private set; }

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, Length);

    public byte[] ToArray() => WrittenSpan.ToArray();

    /// <summary>The bytes written, over the writer's own buffer (valid until the next write or <see cref="Detach"/>).</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, Length);

    /// <summary>Hands the current buffer to whoever still reads it (a send in flight) and starts on a new one.</summary>
    public void Detach()
    {
        _buffer = new byte[_buffer.Length];
        Length = 0;
    }

    public void Clear() => Length = 0;

    public void WriteByte(byte value) => Grow(1)[0] = value;

    public void WriteUInt16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Grow(2), value);

    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Grow(4), value);

    public void Write(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Grow(bytes.Length));

    public void PatchByte(int position, byte value) => _buffer[position] = value;

    public void PatchUInt16(int position, ushort value) =>
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(position, 2), value);

    private Span<byte> Grow(int count)
    {
        if (Length + count > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + count));
        }

        var span = _buffer.AsSpan(Length, count);
        Length += count;
        return span;
    }
}
