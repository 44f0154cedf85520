using System.Buffers.Binary;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>BGP message types (RFC 4271 §4.1, RFC 2918).</summary>
public enum BgpMessageType : byte
{
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

/// <summary>What the decoder needs to know about the session (negotiated capabilities).</summary>
public readonly record struct BgpDecodeContext(bool FourOctetAs)
{
    public static BgpDecodeContext Default => new(FourOctetAs: true);
}

/// <summary>The result of decoding one message: a message, an error, or both (RFC 7606 treat-as-withdraw).</summary>
public readonly record struct BgpDecodeResult(BgpMessage? Message, BgpError? Error)
{
    public bool IsSessionReset => Error is { Action: BgpErrorAction.SessionReset };
}

/// <summary>
/// One BGP message. The header (RFC 4271 §4.1):
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Marker (16 x 0xff)                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Length               |      Type     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// </summary>
public abstract record BgpMessage
{
    public const int HeaderLength = 19;
    public const int MaxLength = 4096;

    public abstract BgpMessageType Type { get; }

    /// <summary>Writes header and body.</summary>
    public void Encode(BgpWriter writer, BgpDecodeContext context)
    {
        var start = writer.Length;
        for (var i = 0; i < 16; i++)
        {
            writer.WriteByte(0xff);
        }

        writer.WriteUInt16(0);
        writer.WriteByte((byte)Type);
        EncodeBody(writer, context);
        writer.PatchUInt16(start + 16, checked((ushort)(writer.Length - start)));
    }

    public byte[] Encode(BgpDecodeContext context)
    {
        var writer = new BgpWriter();
        Encode(writer, context);
        return writer.ToArray();
    }

    public byte[] Encode() => Encode(BgpDecodeContext.Default);

    protected abstract void EncodeBody(BgpWriter writer, BgpDecodeContext context);

    /// <summary>
    /// How many bytes the next message in <paramref name="buffer"/> takes, 0 if more bytes are needed,
    /// or an error if the header is bad (the stream cannot be resynchronized).
    /// </summary>
    public static int FrameLength(ReadOnlySpan<byte> buffer, out BgpError? error)
    {
        error = null;
        if (buffer.Length < HeaderLength)
        {
            return 0;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(buffer[16..]);
        if (length < HeaderLength || length > MaxLength)
        {
            error = BgpError.Reset(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, buffer.Slice(16, 2).ToArray());
            return -1;
        }

        return buffer.Length >= length ? length : 0;
    }

    /// <summary>Decodes one whole message (header included). Never throws on bad input.</summary>
    public static BgpDecodeResult Decode(ReadOnlySpan<byte> frame, BgpDecodeContext context)
    {
        if (frame.Length < HeaderLength)
        {
            return Fail(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, BigEndian16(frame.Length));
        }

        // RFC 4271 §6.1: the marker must be all ones.
        if (frame[..16].ContainsAnyExcept((byte)0xff))
        {
            return Fail(BgpErrorCode.MessageHeader, BgpSubcode.ConnectionNotSynchronized);
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
        if (length != frame.Length || length > MaxLength)
        {
            return Fail(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, frame.Slice(16, 2).ToArray());
        }

        var type = frame[18];
        var body = frame[HeaderLength..];
        var badLength = Fail(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength, frame.Slice(16, 2).ToArray());
        return (BgpMessageType)type switch
        {
            BgpMessageType.Open => length < OpenMessage.MinLength ? badLength : OpenMessage.DecodeBody(body),
            BgpMessageType.Update => length < UpdateMessage.MinLength ? badLength : UpdateMessage.DecodeBody(body, context),
            BgpMessageType.Notification => length < NotificationMessage.MinLength ? badLength : NotificationMessage.DecodeBody(body),
            BgpMessageType.Keepalive => length != HeaderLength ? badLength : new BgpDecodeResult(KeepaliveMessage.Instance, null),
            BgpMessageType.RouteRefresh => RouteRefreshMessage.DecodeBody(body),
            _ => Fail(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageType, type),
        };
    }

    public static BgpDecodeResult Decode(ReadOnlySpan<byte> frame) => Decode(frame, BgpDecodeContext.Default);

    internal static BgpDecodeResult Fail(BgpErrorCode code, byte subcode, params byte[] data) =>
        new(null, BgpError.Reset(code, subcode, data));

    internal static byte[] BigEndian16(int value) => [(byte)(value >> 8), (byte)value];
}

/// <summary>KEEPALIVE: a bare header (RFC 4271 §4.4).</summary>
public sealed record KeepaliveMessage : BgpMessage
{
    public static readonly KeepaliveMessage Instance = new();

    public override BgpMessageType Type => BgpMessageType.Keepalive;

    protected override void EncodeBody(BgpWriter writer, BgpDecodeContext context)
    {
    }
}
