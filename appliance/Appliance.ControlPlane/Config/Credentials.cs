using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Identity;

namespace Isthmus.ControlPlane.Config;

/// <summary>
/// Password and token hashing. Passwords: ASP.NET Core Identity's <see cref="PasswordHasher{TUser}"/>
/// (PBKDF2, salted, self-describing format). Tokens are 256 random bits, so one SHA-256 is enough and
/// keeps a Bearer check cheap enough for every request.
/// </summary>
public static class Credentials
{
    private const string TokenPrefix = "sha256:";
    private static readonly PasswordHasher<string> Hasher = new();
    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    public static string HashPassword(string user, string password) => Hasher.HashPassword(user, password);

    public static bool VerifyPassword(string user, string hash, string password)
    {
        try
        {
            return Hasher.VerifyHashedPassword(user, hash, password) != PasswordVerificationResult.Failed;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public static bool LooksLikePasswordHash(string? hash)
    {
        if (string.IsNullOrEmpty(hash))
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[hash.Length];
        // Format v3 is 0x01 + header + salt + subkey: at least 61 bytes; v2 is 0x00 + 16 + 32.
        return Convert.TryFromBase64String(hash, bytes, out var n) && n >= 49 && bytes[0] is 0x00 or 0x01;
    }

    /// <summary>A new API token: "ist_" + 43 base64url characters (256 bits).</summary>
    public static string NewToken() => "ist_" + Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string HashToken(string token) => TokenPrefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    public static bool LooksLikeTokenHash(string? hash) =>
        hash is not null && hash.StartsWith(TokenPrefix, StringComparison.Ordinal) && hash.Length == TokenPrefix.Length + 64
        && !hash.AsSpan(TokenPrefix.Length).ContainsAnyExcept(LowerHex);

    public static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
