namespace Isthmus.Packets.Tests;

/// <summary>Captured bytes written as hex (whitespace ignored), the way Wireshark's "copy as hex stream" gives them.</summary>
internal static class Hex
{
    public static byte[] Bytes(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Replace("\r", "", StringComparison.Ordinal));
}
