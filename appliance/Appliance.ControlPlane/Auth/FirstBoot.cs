using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Logging;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Auth;

/// <summary>What first boot may provide: a document to import and the first admin's credentials.</summary>
/// <param name="SeedDocument">A config file to import as revision 1 when the store is empty (`run --config`).</param>
/// <param name="AdminPassword">First admin's password (ISTHMUS_ADMIN_PASSWORD or --admin-password-file).</param>
/// <param name="AdminToken">An admin API token to create (--admin-token-file), for automation and the lab.</param>
public sealed record FirstBootOptions(JsonObject? SeedDocument = null, string AdminUser = "admin", string? AdminPassword = null, string? AdminToken = null);

/// <summary>
/// No default password. On an empty store, first boot imports the seed document and creates the first
/// admin from what first-boot configuration provided. When no admin exists afterwards, a one-time
/// setup token is generated and logged; <c>POST /api/v1/setup</c> with it creates the first admin.
/// </summary>
public sealed partial class FirstBoot(ConfigService config, ILogger<FirstBoot> logger)
{
    private readonly Lock _gate = new();
    private string? _setupToken;

    /// <summary>True while the appliance waits for its first admin through the setup token.</summary>
    public bool AwaitingSetup
    {
        get
        {
            lock (_gate)
            {
                return _setupToken is not null;
            }
        }
    }

    /// <summary>Imports and seeds an empty store; returns the errors of an invalid seed (nothing is written then).</summary>
    public IReadOnlyList<DataPlane.Programming.ProgramError> Run(FirstBootOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (config.Current.Revision is null)
        {
            var seed = options.SeedDocument?.DeepClone().AsObject() ?? new JsonObject();
            var parsed = ConfigDocumentJson.Parse(seed);
            if (parsed.Document is null)
            {
                return parsed.Errors;
            }

            var document = parsed.Document;
            if (options.AdminPassword is { Length: > 0 } password)
            {
                document = document with { Users = [.. document.Users.Where(u => u.Name != options.AdminUser), new UserSpec(options.AdminUser, Role.Admin, Credentials.HashPassword(options.AdminUser, password))] };
            }

            if (options.AdminToken is { Length: > 0 } token)
            {
                document = document with { ApiTokens = [.. document.ApiTokens.Where(t => t.Name != "first-boot"), new ApiTokenSpec("first-boot", Role.Admin, Credentials.HashToken(token))] };
            }

            var outcome = config.Change(_ => document, "first boot: imported configuration", new Actor("first-boot", "local"));
            if (!outcome.Ok)
            {
                return outcome.Errors;
            }

            LogSeeded(logger, outcome.Revision!.Id, document.Users.Count, document.ApiTokens.Count);
        }
        else if (options.SeedDocument is not null)
        {
            // The store is the source of truth once it exists; the file only seeds an empty one.
            LogSeedIgnored(logger, config.Current.Revision.Id);
        }

        var current = config.Current.Document;
        if (!current.Users.Any(u => u.Role == Role.Admin) && !current.ApiTokens.Any(t => t.Role == Role.Admin))
        {
            lock (_gate)
            {
                _setupToken = Credentials.Base64Url(RandomNumberGenerator.GetBytes(18));
                LogSetupToken(logger, _setupToken);
            }
        }

        return [];
    }

    /// <summary>Creates the first admin if <paramref name="token"/> is the setup token; the token then dies.</summary>
    public CommitOutcome? Setup(string token, string user, string password, Actor actor)
    {
        lock (_gate)
        {
            if (_setupToken is null || !Credentials.FixedTimeEquals(_setupToken, token ?? ""))
            {
                return null;
            }

            var outcome = config.Change(
                d => d with { Users = [.. d.Users.Where(u => u.Name != user), new UserSpec(user, Role.Admin, Credentials.HashPassword(user, password))] },
                $"setup: first admin '{user}'",
                actor);
            if (outcome.Ok)
            {
                _setupToken = null;
                LogFirstAdmin(logger, user, actor.Address);
            }

            return outcome;
        }
    }

    [LoggerMessage(EventId = LogEvents.ConfigSeeded, Level = LogLevel.Information, Message = "First boot: imported configuration as revision {Revision} ({Users} users, {Tokens} API tokens)")]
    private static partial void LogSeeded(ILogger logger, long revision, int users, int tokens);

    [LoggerMessage(EventId = LogEvents.ConfigSeedIgnored, Level = LogLevel.Information, Message = "The store already holds revision {Revision}: the --config file is not imported (use `import` to replace the configuration offline)")]
    private static partial void LogSeedIgnored(ILogger logger, long revision);

    [LoggerMessage(EventId = LogEvents.SetupTokenIssued, Level = LogLevel.Warning, Message = "No admin is configured. One-time setup token: {SetupToken}  (POST /api/v1/setup {{\"token\":\"...\",\"user\":\"admin\",\"password\":\"...\"}})")]
    private static partial void LogSetupToken(ILogger logger, string setupToken);

    [LoggerMessage(EventId = LogEvents.FirstAdminCreated, Level = LogLevel.Warning, Message = "Setup: first admin '{User}' created from {Address}; the setup token is spent")]
    private static partial void LogFirstAdmin(ILogger logger, string user, string address);
}
