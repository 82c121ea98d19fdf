// Key Vault for the one secret the app has: the admin key (BRANCHSYNC_ADMIN_KEY). The app
// setting holds only a @Microsoft.KeyVault(SecretUri=...) reference that the platform resolves
// with the app's user-assigned identity, so the key never appears in the app's configuration.
param name string
param location string
param tags object = {}

@description('Principal (object) id of the Function App\'s user-assigned identity.')
param principalId string

@secure()
@minLength(16)
@description('The admin key head office sends as X-Branchsync-Admin-Key.')
param adminKey string

@description('Secret name: Key Vault allows letters, digits and dashes only.')
param adminKeySecretName string = 'branchsync-admin-key'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references are resolved from the Flex Consumption platform without VNet integration, so the vault cannot deny public network access; access is RBAC-only
  // checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109, the vault must be reachable over its public endpoint
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // RBAC mode: no access policies; the identity gets exactly Key Vault Secrets User below.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Purge protection cannot be turned off again: a deleted vault or secret stays recoverable.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource adminKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry date: an expired secret makes the Key Vault reference fail and takes the admin API down; the key is rotated by hand (docs/deploy.md)
  parent: vault
  name: adminKeySecretName
  properties: {
    value: adminKey
    contentType: 'text/plain'
  }
}

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

// Scoped to the one secret, not the vault: the identity can read the admin key and nothing else.
resource secretsUserAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: adminKeySecret
  name: guid(adminKeySecret.id, principalId, keyVaultSecretsUser)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
// Versionless: the app picks up a rotated key without a redeploy (docs/deploy.md).
output adminKeySecretUri string = adminKeySecret.properties.secretUri
