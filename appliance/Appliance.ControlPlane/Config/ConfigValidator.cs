using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Config;

/// <summary>
/// The control plane's own rules for a document (settings, users, tokens). The data-plane sections are
/// validated by <see cref="SnapshotCompiler"/>; <see cref="Apply.ConfigService"/> reports both lists
/// together, so an operator sees every error at once.
/// </summary>
public static class ConfigValidator
{
    public static List<ProgramError> Validate(ConfigDocument document, bool requireAdmin)
    {
        var errors = new List<ProgramError>();
        if (document.DataPlane.PoolSize is < 1024 or > 1 << 20)
        {
            errors.Add(new("dataPlane.poolSize", $"{document.DataPlane.PoolSize} packet buffers is out of range (1024 to 1048576)"));
        }

        if (document.DataPlane.RxBatch is < 1 or > 256)
        {
            errors.Add(new("dataPlane.rxBatch", $"{document.DataPlane.RxBatch} frames per receive call is out of range (1 to 256)"));
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < document.Users.Count; i++)
        {
            var user = document.Users[i];
            var path = $"users[{i}]";
            if (string.IsNullOrWhiteSpace(user.Name) || user.Name.Contains(':', StringComparison.Ordinal))
            {
                errors.Add(new($"{path}.name", "a user needs a name without ':' (HTTP Basic separates name and password with it)"));
            }
            else if (!names.Add(user.Name))
            {
                errors.Add(new($"{path}.name", $"user '{user.Name}' is listed twice"));
            }

            if (!Enum.IsDefined(user.Role))
            {
                errors.Add(new($"{path}.role", "the role must be admin or read-only"));
            }

            if (!Credentials.LooksLikePasswordHash(user.PasswordHash))
            {
                errors.Add(new($"{path}.passwordHash", "not a password hash: set passwords with POST /api/v1/users, never in clear"));
            }
        }

        var tokenNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < document.ApiTokens.Count; i++)
        {
            var token = document.ApiTokens[i];
            var path = $"apiTokens[{i}]";
            if (string.IsNullOrWhiteSpace(token.Name))
            {
                errors.Add(new($"{path}.name", "a token needs a name"));
            }
            else if (!tokenNames.Add(token.Name))
            {
                errors.Add(new($"{path}.name", $"token '{token.Name}' is listed twice"));
            }

            if (!Enum.IsDefined(token.Role))
            {
                errors.Add(new($"{path}.role", "the role must be admin or read-only"));
            }

            if (!Credentials.LooksLikeTokenHash(token.TokenHash))
            {
                errors.Add(new($"{path}.tokenHash", "not a token hash (sha256:<64 hex digits>): create tokens with POST /api/v1/tokens"));
            }
        }

        if (requireAdmin && !document.Users.Any(u => u.Role == Role.Admin) && !document.ApiTokens.Any(t => t.Role == Role.Admin))
        {
            errors.Add(new(ConfigDocumentJson.UsersKey, "the configuration would leave no admin user or admin token: nobody could change it again"));
        }

        return errors;
    }
}
