using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Config;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>First-admin setup, users and API tokens. Users and tokens live in the document, so each change is a revision.</summary>
public static class AccessApi
{
    public sealed record SetupRequest(string Token, string User, string Password);

    public sealed record UserRequest(string Name, Role Role, string Password);

    public sealed record TokenRequest(string Name, Role Role);

    /// <param name="Token">Shown once; only its hash is stored.</param>
    public sealed record TokenResponse(string Name, Role Role, string Token, long Revision);

    public sealed record UserView(string Name, Role Role);

    public const int MinPasswordLength = 12;

    public static void MapAccessApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("Access");
        api.MapPost("/setup", (FirstBoot firstBoot, SetupRequest request, HttpContext context) =>
            {
                if (request.Password is not { Length: >= MinPasswordLength })
                {
                    return Problems.Invalid("password", $"use at least {MinPasswordLength} characters");
                }

                var outcome = firstBoot.Setup(request.Token, request.User, request.Password, ConfigApi.ActorOf(context) with { Name = $"setup:{request.User}" });
                return outcome switch
                {
                    null => Results.Problem("no setup is pending, or the setup token is wrong", statusCode: 403),
                    { Ok: false } => Problems.Invalid(outcome.Errors),
                    _ => Results.Ok(new { user = request.User, revision = outcome.Revision!.Id }),
                };
            })
            .WithSummary("Create the first admin with the one-time setup token from the console log (no authentication)")
            .AllowAnonymous();

        api.MapGet("/users", (ConfigService config) => config.Current.Document.Users.Select(u => new UserView(u.Name, u.Role)))
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapPost("/users", (ConfigService config, UserRequest request, HttpContext context) =>
            {
                if (request.Password is not { Length: >= MinPasswordLength })
                {
                    return Problems.Invalid("password", $"use at least {MinPasswordLength} characters");
                }

                var hash = Credentials.HashPassword(request.Name, request.Password);
                var outcome = config.Change(
                    d => d with { Users = [.. d.Users.Where(u => !string.Equals(u.Name, request.Name, StringComparison.OrdinalIgnoreCase)), new UserSpec(request.Name, request.Role, hash)] },
                    $"user '{request.Name}' set ({Roles.Name(request.Role)})",
                    ConfigApi.ActorOf(context));
                return outcome.Ok ? Results.Ok(new { user = request.Name, revision = outcome.Revision!.Id }) : Problems.Invalid(outcome.Errors);
            })
            .WithSummary("Add a user or set a user's password and role")
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapDelete("/users/{name}", (ConfigService config, string name, HttpContext context) => Remove(config, context, name, isToken: false))
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);

        api.MapGet("/tokens", (ConfigService config) => config.Current.Document.ApiTokens.Select(t => new UserView(t.Name, t.Role)))
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapPost("/tokens", (ConfigService config, TokenRequest request, HttpContext context) =>
            {
                var token = Credentials.NewToken();
                var outcome = config.Change(
                    d => d with { ApiTokens = [.. d.ApiTokens.Where(t => !string.Equals(t.Name, request.Name, StringComparison.OrdinalIgnoreCase)), new ApiTokenSpec(request.Name, request.Role, Credentials.HashToken(token))] },
                    $"API token '{request.Name}' issued ({Roles.Name(request.Role)})",
                    ConfigApi.ActorOf(context));
                return outcome.Ok ? Results.Ok(new TokenResponse(request.Name, request.Role, token, outcome.Revision!.Id)) : Problems.Invalid(outcome.Errors);
            })
            .WithSummary("Issue an API token (returned once; stored hashed)")
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapDelete("/tokens/{name}", (ConfigService config, string name, HttpContext context) => Remove(config, context, name, isToken: true))
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);
    }

    private static IResult Remove(ConfigService config, HttpContext context, string name, bool isToken)
    {
        var document = config.Current.Document;
        var exists = isToken
            ? document.ApiTokens.Any(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
            : document.Users.Any(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase));
        if (!exists)
        {
            return Results.Problem($"there is no {(isToken ? "token" : "user")} '{name}'", statusCode: 404);
        }

        var outcome = config.Change(
            d => isToken
                ? d with { ApiTokens = [.. d.ApiTokens.Where(t => !string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))] }
                : d with { Users = [.. d.Users.Where(u => !string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase))] },
            $"{(isToken ? "API token" : "user")} '{name}' removed",
            ConfigApi.ActorOf(context));
        return outcome.Ok ? Results.Ok(new { removed = name, revision = outcome.Revision!.Id }) : Problems.Invalid(outcome.Errors);
    }
}
