using System.Text.Json;
using System.Text.Json.Serialization;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.HealthChecks;
using Isthmus.ControlPlane.Mobility;
using Isthmus.ControlPlane.Runtime;
using Isthmus.ControlPlane.Store;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// The composition of the REST API in one place: services, middleware order, endpoints. The host calls
/// these three; the API tests call the same three on a test server.
/// </summary>
public static class ControlPlaneApi
{
    /// <summary>Registers the store, the config service, first boot, the data plane runtime, auth and OpenAPI.</summary>
    public static IServiceCollection AddControlPlane(this IServiceCollection services, string storePath)
    {
        services.AddSingleton(sp => ConfigStore.Open(storePath, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ConfigService>();
        services.AddSingleton<FirstBoot>();
        services.AddSingleton<HealthMonitor>();
        // The load balancer's VIP view for mobility (registered before mobility's NoVips fallback).
        services.AddSingleton<IVipHealth>(sp => sp.GetRequiredService<HealthMonitor>());
        services.TryAddSingleton(_ => new CpuIdleLatency()); // tests register one holding a file instead of the device
        services.AddSingleton<DataPlaneRuntime>();
        services.AddHostedService(sp => sp.GetRequiredService<DataPlaneRuntime>());
        services.TryAddSingleton<IVipHealth, NoVips>();
        services.AddSingleton<MobilityService>();
        services.AddHostedService(sp => sp.GetRequiredService<MobilityService>());
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        });
        services.AddProblemDetails();
        services.AddAuthentication(IsthmusAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, IsthmusAuthenticationHandler>(IsthmusAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Roles.AdminPolicy, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin))
            // Every endpoint needs a caller unless it says otherwise (health, setup).
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build());
        services.AddOpenApi();
        return services;
    }

    public static IApplicationBuilder UseControlPlane(this IApplicationBuilder app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRouting();
        // Outside authentication and authorization, so refused calls (401, 403) are audited too.
        app.UseMiddleware<AuditMiddleware>();
        app.UseAuthentication();
        app.UseAuthorization();
        return app;
    }

    public static IEndpointRouteBuilder MapControlPlane(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapStateApi();
        endpoints.MapFlowApi();
        endpoints.MapConfigApi();
        endpoints.MapAccessApi();
        endpoints.MapLoadBalancerApi();
        endpoints.MapMetricsApi();
        endpoints.MapMobilityApi();
        endpoints.MapOpenApi();
        return endpoints;
    }
}
