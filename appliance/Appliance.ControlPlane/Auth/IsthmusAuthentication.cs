using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Logging;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Isthmus.ControlPlane.Auth;

/// <summary>Role names as claims and policy names.</summary>
public static class Roles
{
    public const string Admin = "admin";
    public const string ReadOnly = "read-only";

    /// <summary>The policy for every change: admins only.</summary>
    public const string AdminPolicy = "admin";

    public static string Name(Role role) => role == Role.Admin ? Admin : ReadOnly;
}

/// <summary>
/// One scheme for both kinds of caller: people with HTTP Basic (local users, PasswordHasher hashes)
/// and automation with Bearer API tokens (SHA-256 of a 256-bit random token). Both are checked
/// against the running revision's document, so a user removed by a commit is out at once.
/// </summary>
/// <remarks>
/// PBKDF2 is deliberately slow; a successful Basic check is remembered (keyed by a hash of name,
/// password and stored hash, so a password change invalidates it) to keep polling clients cheap.
/// </remarks>
public sealed partial class IsthmusAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ConfigService config)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "Isthmus";

    private static readonly ConcurrentDictionary<string, byte> VerifiedBasic = new();

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!AuthenticationHeaderValue.TryParse(Request.Headers.Authorization, out var header) || header.Parameter is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var document = config.Current.Document;
        if (header.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            var hash = Credentials.HashToken(header.Parameter);
            foreach (var token in document.ApiTokens)
            {
                if (Credentials.FixedTimeEquals(token.TokenHash, hash))
                {
                    return Task.FromResult(Success(token.Name, token.Role, "token"));
                }
            }

            return Task.FromResult(Fail("unknown API token"));
        }

        if (header.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header.Parameter));
            }
            catch (FormatException)
            {
                return Task.FromResult(Fail("malformed Basic credentials"));
            }

            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                return Task.FromResult(Fail("malformed Basic credentials"));
            }

            var name = decoded[..colon];
            var password = decoded[(colon + 1)..];
            var user = document.Users.FirstOrDefault(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
            if (user is null)
            {
                return Task.FromResult(Fail($"unknown user '{name}'"));
            }

            var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{user.Name}\0{password}\0{user.PasswordHash}")));
            if (!VerifiedBasic.ContainsKey(key))
            {
                if (!Credentials.VerifyPassword(user.Name, user.PasswordHash, password))
                {
                    return Task.FromResult(Fail($"wrong password for '{name}'"));
                }

                if (VerifiedBasic.Count > 1024)
                {
                    VerifiedBasic.Clear();
                }

                VerifiedBasic[key] = 0;
            }

            return Task.FromResult(Success(user.Name, user.Role, "password"));
        }

        return Task.FromResult(AuthenticateResult.NoResult());
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = new(["Basic realm=\"isthmus\", charset=\"UTF-8\"", "Bearer realm=\"isthmus\""]);
        await Response.WriteAsJsonAsync(
            new ProblemDetails
            {
                Status = 401,
                Title = "Authentication required",
                Detail = "Send HTTP Basic credentials of a local user or an API token (Authorization: Bearer ist_...).",
                Type = "https://www.rfc-editor.org/rfc/rfc9110#section-15.5.2",
            },
            (System.Text.Json.JsonSerializerOptions?)null,
            "application/problem+json").ConfigureAwait(false);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await Response.WriteAsJsonAsync(
            new ProblemDetails
            {
                Status = 403,
                Title = "Forbidden",
                Detail = $"'{Context.User.Identity?.Name}' is {Context.User.FindFirstValue(ClaimTypes.Role)}: this needs the admin role.",
                Type = "https://www.rfc-editor.org/rfc/rfc9110#section-15.5.4",
            },
            (System.Text.Json.JsonSerializerOptions?)null,
            "application/problem+json").ConfigureAwait(false);
    }

    private AuthenticateResult Fail(string why)
    {
        LogFailed(Logger, why, Context.Connection.RemoteIpAddress?.ToString() ?? "?");
        return AuthenticateResult.Fail(why);
    }

    private static AuthenticateResult Success(string name, Role role, string method)
    {
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.Name, name), new Claim(ClaimTypes.Role, Roles.Name(role)), new Claim(ClaimTypes.AuthenticationMethod, method)],
            SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    [LoggerMessage(EventId = LogEvents.AuthenticationFailed, Level = LogLevel.Warning, Message = "Authentication failed from {Address}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason, string address);
}
