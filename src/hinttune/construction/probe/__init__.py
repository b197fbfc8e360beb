"""The K* search: one search per problem, its strategies, finished searches remembered."""
