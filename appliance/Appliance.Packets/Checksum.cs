namespace Isthmus.Packets;

/// <summary>The Internet checksum (RFC 1071) and its incremental update (RFC 1624).</summary>
public static class Checksum
{
}
