namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).</summary>
public enum BgpErrorCode : byte
{
    MessageHeader = 1,
    OpenMessage = 2,
    UpdateMessage = 3,
    HoldTimerExpired = 4,
    FiniteStateMachine = 5,
    Cease = 6,
    RouteRefreshMessage = 7,
}

/// <summary>NOTIFICATION subcodes, grouped by error code (RFC 4271 §6, RFC 4486, RFC 7313).</summary>
public static class BgpSubcode
{
    public const byte Unspecific = 0;

    // Message Header Error (RFC 4271 §6.1).
    public const byte ConnectionNotSynchronized = 1;
    public const byte BadMessageLength = 2;
    public const byte BadMessageType = 3;

    // OPEN Message Error (RFC 4271 §6.2, RFC 5492 §5).
    public const byte UnsupportedVersionNumber = 1;
    public const byte BadPeerAs = 2;
    public const byte BadBgpIdentifier = 3;
    public const byte UnsupportedOptionalParameter = 4;
    public const byte UnacceptableHoldTime = 6;
    public const byte UnsupportedCapability = 7;

    // UPDATE Message Error (RFC 4271 §6.3).
    public const byte MalformedAttributeList = 1;
    public const byte UnrecognizedWellKnownAttribute = 2;
    public const byte MissingWellKnownAttribute = 3;
    public const byte AttributeFlagsError = 4;
    public const byte AttributeLengthError = 5;
    public const byte InvalidOriginAttribute = 6;
    public const byte InvalidNextHopAttribute = 8;
    public const byte OptionalAttributeError = 9;
    public const byte InvalidNetworkField = 10;
    public const byte MalformedAsPath = 11;

    // Cease (RFC 4486 §4).
    public const byte MaximumPrefixesReached = 1;
    public const byte AdministrativeShutdown = 2;
    public const byte PeerDeconfigured = 3;
    public const byte AdministrativeReset = 4;
    public const byte ConnectionRejected = 5;
    public const byte OtherConfigurationChange = 6;
    public const byte ConnectionCollisionResolution = 7;

    // ROUTE-REFRESH Message Error (RFC 7313 §5).
    public const byte InvalidMessageLength = 1;
}

/// <summary>What the receiver must do about an error (RFC 7606 §2).</summary>
public enum BgpErrorAction
{
    /// <summary>Send the NOTIFICATION and close the session (RFC 4271 §6).</summary>
    SessionReset,

    /// <summary>Keep the session; every NLRI in the UPDATE is treated as withdrawn (RFC 7606 §2).</summary>
    TreatAsWithdraw,

    /// <summary>Keep the session and the routes; the bad attribute is dropped (RFC 7606 §2).</summary>
    AttributeDiscard,
}

/// <summary>
/// A decoding error, carried as data (never thrown): the NOTIFICATION code, subcode and data the
/// receiver sends on a session reset, and the RFC 7606 action.
/// </summary>
public sealed record BgpError(BgpErrorCode Code, byte Subcode, BgpErrorAction Action, byte[] Data)
{
    public static BgpError Reset(BgpErrorCode code, byte subcode, params byte[] data) =>
        new(code, subcode, BgpErrorAction.SessionReset, data);

    public static BgpError Withdraw(byte subcode, params byte[] data) =>
        new(BgpErrorCode.UpdateMessage, subcode, BgpErrorAction.TreatAsWithdraw, data);

    public static BgpError Discard(byte subcode, params byte[] data) =>
        new(BgpErrorCode.UpdateMessage, subcode, BgpErrorAction.AttributeDiscard, data);

    /// <summary>The NOTIFICATION this error sends on a session reset.</summary>
    public NotificationMessage ToNotification() => new(Code, Subcode, Data);

    public override string ToString() => $"{Code}/{Subcode} ({Action})";
}
