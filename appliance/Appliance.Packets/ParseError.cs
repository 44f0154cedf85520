namespace Isthmus.Packets;

/// <summary>
/// Why a parser refused a frame. Parsers never throw on packet data: a stage turns this into a
/// drop reason and counts it (VPP style), so the values are stable and <see cref="None"/> is zero.
/// </summary>
public enum ParseError : byte
{
    /// <summary>The header is usable.</summary>
    None = 0,

    /// <summary>The buffer ends before the header (or the length it declares) does.</summary>
    Truncated,

    /// <summary>IPv4 version is not 4, or IPv6 version is not 6.</summary>
    BadVersion,

    /// <summary>IPv4 IHL below 5 or TCP data offset below 5.</summary>
    BadHeaderLength,

    /// <summary>IPv4 total length or UDP length smaller than its own header.</summary>
    BadTotalLength,

    /// <summary>VXLAN I flag clear (RFC 7348 section 5).</summary>
    BadVxlanFlags,

    /// <summary>More 802.1Q/802.1ad tags than the two we walk.</summary>
    TooManyVlanTags,

    /// <summary>IPv6 extension header chain longer than the walk limit.</summary>
    TooManyExtensionHeaders,

    /// <summary>An IPv6 extension header is malformed (for example AH with a zero length).</summary>
    BadExtensionHeader,

    /// <summary>ARP hardware/protocol type or address lengths are not Ethernet/IPv4.</summary>
    UnsupportedArpFormat,

    /// <summary>The EtherType or IP protocol is not one this operation handles.</summary>
    UnsupportedProtocol,

    /// <summary>The packet is an IP fragment, so its transport header or checksum cannot be handled.</summary>
    Fragmented,
}
