using Isthmus.ControlPlane.Store;
using Microsoft.AspNetCore.Http;

namespace Isthmus.ControlPlane.Api;

/// <summary>Marks an endpoint whose successful calls <see cref="Apply.ConfigService"/> audits inside the commit transaction.</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false)]
public sealed class AuditedInStoreAttribute : Attribute;

/// <summary>
/// Every mutating call (anything but GET, HEAD, OPTIONS) is audited: who (or "anonymous"), from which
/// address, what, and the status. Successful configuration changes are already audited inside their
/// commit transaction, so they are not written twice.
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, ConfigStore store)
{
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var method = context.Request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            var status = context.Response.StatusCode;
            var inStore = context.GetEndpoint()?.Metadata.GetMetadata<AuditedInStoreAttribute>() is not null;
            if (!(inStore && status is >= 200 and < 300))
            {
                store.Audit(new AuditRecord(
                    context.User.Identity?.IsAuthenticated == true ? context.User.Identity.Name ?? "?" : "anonymous",
                    context.Connection.RemoteIpAddress?.ToString() ?? "local",
                    $"{method} {context.Request.Path}{context.Request.QueryString}",
                    status.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
    }
}
