// The one identity the Function App runs as. User-assigned (not system-assigned) so that its
// role assignments exist before the app starts: the host needs storage on its very first boot.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
