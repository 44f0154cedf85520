using System.Text;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>NOTIFICATION (RFC 4271 §4.5): error code, subcode, data.</summary>
public sealed record NotificationMessage(BgpErrorCode Code, byte Subcode, byte[] Data) : BgpMessage
{
    public const int MinLength = HeaderLength + 2;

    public override BgpMessageType Type => BgpMessageType.Notification;

    /// <summary>
    /// Cease / Administrative Shutdown with the shutdown communication (RFC 8203, updated by RFC 9003:
    /// one length octet, then up to 255 octets of UTF-8).
    /// </summary>
    public static NotificationMessage AdministrativeShutdown(string? message = null) =>
        new(BgpErrorCode.Cease, BgpSubcode.AdministrativeShutdown, ShutdownCommunication(message));

    /// <summary>The RFC 8203 shutdown communication, if this is a Cease with one.</summary>
    public string? ShutdownMessage
    {
        get
        {
            if (Code != BgpErrorCode.Cease || Subcode is not (BgpSubcode.AdministrativeShutdown or BgpSubcode.AdministrativeReset)
                || Data.Length == 0 || Data[0] + 1 > Data.Length)
            {
                return null;
            }

            return Encoding.UTF8.GetString(Data, 1, Data[0]);
        }
    }

    internal static BgpDecodeResult DecodeBody(ReadOnlySpan<byte> body) =>
        new(new NotificationMessage((BgpErrorCode)body[0], body[1], body[2..].ToArray()), null);

    protected override void EncodeBody(BgpWriter writer, BgpDecodeContext context)
    {
        writer.WriteByte((byte)Code);
        writer.WriteByte(Subcode);
        writer.Write(Data);
    }

    private static byte[] ShutdownCommunication(string? message)
    {
        if (string.IsNullOrEmpty(message))
        {
            return [];
        }

        var bytes = Encoding.UTF8.GetBytes(message);
        var length = Math.Min(bytes.Length, 255);

        // Do not cut a UTF-8 sequence in half.
        while (length < bytes.Length && length > 0 && (bytes[length] & 0xc0) == 0x80)
        {
            length--;
        }

        var data = new byte[length + 1];
        data[0] = (byte)length;
        bytes.AsSpan(0, length).CopyTo(data.AsSpan(1));
        return data;
    }

    public bool Equals(NotificationMessage? other) =>
        other is not null && Code == other.Code && Subcode == other.Subcode && Data.AsSpan().SequenceEqual(other.Data);

    public override int GetHashCode() => HashCode.Combine(Code, Subcode, Data.Length);
}

/// <summary>ROUTE-REFRESH (RFC 2918 §3): AFI, reserved (RFC 7313 message subtype), SAFI.</summary>
public sealed record RouteRefreshMessage(AfiSafi Family) : BgpMessage
{
    public const int Length = HeaderLength + 4;

    public override BgpMessageType Type => BgpMessageType.RouteRefresh;

    internal static BgpDecodeResult DecodeBody(ReadOnlySpan<byte> body)
    {
        // RFC 7313 §5: a ROUTE-REFRESH with a bad length is a ROUTE-REFRESH Message Error.
        if (body.Length != 4)
        {
            return Fail(BgpErrorCode.RouteRefreshMessage, BgpSubcode.InvalidMessageLength, BigEndian16(body.Length + HeaderLength));
        }

        return new(new RouteRefreshMessage(new AfiSafi((ushort)((body[0] << 8) | body[1]), body[3])), null);
    }

    protected override void EncodeBody(BgpWriter writer, BgpDecodeContext context)
    {
        writer.WriteUInt16(Family.Afi);
        writer.WriteByte(0);
        writer.WriteByte(Family.Safi);
    }
}
