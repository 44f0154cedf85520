using System.Globalization;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>Configuration: get, validate, diff, commit (optionally confirmed), confirm, rollback, revisions, audit.</summary>
public static class ConfigApi
{
    /// <param name="Document">The whole configuration document. Without "users"/"apiTokens" the current ones are kept.</param>
    /// <param name="Comment">Why: shown in the revision list.</param>
    /// <param name="ConfirmMinutes">Commit-confirmed: roll back by itself unless confirmed within this many minutes.</param>
    public sealed record CommitRequest(JsonObject Document, string? Comment = null, int? ConfirmMinutes = null);

    public sealed record CommitResponse(long Revision, double CompileAndSwapMs, DateTimeOffset? ConfirmBy);

    public sealed record RollbackRequest(long Revision, string? Comment = null);

    public sealed record ValidateResponse(bool Valid, double CompileMs);

    public sealed record RevisionView(RevisionInfo Revision, JsonObject Document);

    public static Actor ActorOf(HttpContext context) =>
        new(context.User.Identity?.Name ?? "anonymous", context.Connection.RemoteIpAddress?.ToString() ?? "local");

    public static void MapConfigApi(this IEndpointRouteBuilder app)
    {
        var config = app.MapGroup("/api/v1/config").WithTags("Configuration");
        config.MapGet("", (ConfigService service, HttpContext context) => GetConfig(service, context))
            .WithSummary("The running configuration document (read-only callers do not see users and tokens)");
        config.MapGet("/revisions", (ConfigService service, int? limit, long? before) => service.Store.List(Math.Clamp(limit ?? 100, 1, 1000), before))
            .WithSummary("Revisions, newest first");
        config.MapGet("/revisions/{id:long}", (ConfigService service, long id) =>
                service.Store.Get(id) is { } r ? Results.Ok(new RevisionView(r.Info, JsonNode.Parse(r.Document)!.AsObject())) : Results.Problem($"there is no revision {id}", statusCode: 404))
            .WithSummary("One revision with its document");
        config.MapGet("/pending", (ConfigService service) => service.Pending is { } p ? Results.Ok(p) : Results.NoContent())
            .WithSummary("The commit-confirmed waiting for confirmation, if any");
        config.MapGet("/diff", (ConfigService service, long from, long to) =>
                service.Diff(from, to) is { } diff ? Results.Ok(diff) : Results.Problem($"revision {from} or {to} does not exist", statusCode: 404))
            .WithSummary("JSON-path diff between two revisions (0 = empty document)");
        config.MapPost("/diff", (ConfigService service, JsonObject document) => service.DiffCandidate(document))
            .WithSummary("Diff from the running revision to a candidate document")
            .RequireAuthorization(Roles.AdminPolicy);
        config.MapPost("/validate", (ConfigService service, JsonObject document) =>
            {
                var outcome = service.Validate(document);
                return outcome.Ok ? Results.Ok(new ValidateResponse(true, outcome.CompileAndSwap.TotalMilliseconds)) : Problems.Invalid(outcome.Errors);
            })
            .WithSummary("Validate and compile a candidate document; every error with its path")
            .RequireAuthorization(Roles.AdminPolicy);
        config.MapPost("/commit", (ConfigService service, CommitRequest request, HttpContext context) =>
            {
                var outcome = service.Commit(request.Document, request.Comment, request.ConfirmMinutes, ActorOf(context));
                return outcome.Ok
                    ? Results.Created($"/api/v1/config/revisions/{outcome.Revision!.Id}", new CommitResponse(outcome.Revision.Id, outcome.CompileAndSwap.TotalMilliseconds, outcome.Revision.ConfirmBy))
                    : Problems.Invalid(outcome.Errors);
            })
            .WithSummary("Validate, compile, store as a new revision and apply (hitless); optionally commit-confirmed")
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);
        config.MapPost("/confirm", (ConfigService service, HttpContext context) =>
                service.Confirm(ActorOf(context)) ? Results.Ok(new { confirmed = true }) : Results.Problem("no commit is waiting for confirmation", statusCode: 409))
            .WithSummary("Confirm the pending commit-confirmed")
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);
        config.MapPost("/rollback", (ConfigService service, RollbackRequest request, HttpContext context) =>
            {
                var outcome = service.Rollback(request.Revision, request.Comment, ActorOf(context));
                return outcome.Ok
                    ? Results.Created($"/api/v1/config/revisions/{outcome.Revision!.Id}", new CommitResponse(outcome.Revision.Id, outcome.CompileAndSwap.TotalMilliseconds, null))
                    : Problems.Invalid(outcome.Errors, "The rollback cannot be applied");
            })
            .WithSummary("Roll back to a revision (a new revision with that revision's document)")
            .WithMetadata(new AuditedInStoreAttribute())
            .RequireAuthorization(Roles.AdminPolicy);

        app.MapGet("/api/v1/audit", (ConfigStore store, int? limit) => store.AuditLog(Math.Clamp(limit ?? 200, 1, 10000)))
            .WithTags("Access")
            .WithSummary("Audit log: who did what, when, from where")
            .RequireAuthorization(Roles.AdminPolicy);
    }

    /// <summary>The document as it can be committed again; its revision is in the X-Isthmus-Revision header.</summary>
    private static JsonObject GetConfig(ConfigService service, HttpContext context)
    {
        var current = service.Current;
        var node = ConfigDocumentJson.ToNode(current.Document);
        context.Response.Headers["X-Isthmus-Revision"] = (current.Revision?.Id ?? 0).ToString(CultureInfo.InvariantCulture);
        if (!context.User.IsInRole(Roles.Admin))
        {
            node.Remove(ConfigDocumentJson.UsersKey);
            node.Remove(ConfigDocumentJson.ApiTokensKey);
        }

        return node;
    }
}
